/**
 * Starts the whole server: the engine worker (which loads the model in the background), one
 * Fastify app per configured port, and a shutdown that drains running requests.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { ensureTinyCheckpoint } from './model/checkpoint/tiny.ts';
import { openCheckpoint } from './model/checkpoint/checkpoint.ts';
import { ChatTokenizer } from './model/tokenizer.ts';
import { EngineClient } from './engine/worker/engine-client.ts';
import { buildApp, type AppDeps } from './api/app.ts';
import { ServerMetrics } from './api/metrics.ts';
import { modelOptionsFor, type ServerConfig } from './config.ts';
import type { ServingContext } from './chat/prepare-request.ts';

export interface RunningServer {
  apps: FastifyInstance[];
  urls: string[];
  engine: EngineClient;
  usingEmbeddedModel: boolean;
  /** Stops accepting, lets running requests finish for up to drainSeconds, stops the engine. */
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig, logger: FastifyServerOptions['logger'] = false): Promise<RunningServer> {
  const usingEmbeddedModel = config.modelPath === null;
  const modelPath = config.modelPath ?? (await ensureTinyCheckpoint());
  // The HTTP thread reads the small files (config, tokenizer); the worker loads the weights.
  const checkpoint = await openCheckpoint(modelPath);
  const tokenizer = ChatTokenizer.fromFiles(checkpoint.files);
  const engine = new EngineClient(modelPath, modelOptionsFor(config), { maxQueued: config.queueSize });
  let serving: ServingContext | null = null;
  void engine.ready.then(
    (info) => {
      serving = { config, model: checkpoint.config, tokenizer, maxModelLen: info.maxModelLen };
    },
    () => {},
  );
  const tokenTexts = new Map<number, string>();
  const deps: AppDeps = {
    config,
    modelPath,
    engine,
    serving: () => serving,
    tokenText: (id) => {
      let text = tokenTexts.get(id);
      if (text === undefined) tokenTexts.set(id, (text = tokenizer.decode([id], false)));
      return text;
    },
    metrics: new ServerMetrics(() => engine.stats),
  };
  const apps: FastifyInstance[] = [];
  const urls: string[] = [];
  try {
    for (const port of config.ports) {
      const app = await buildApp(deps, logger);
      urls.push(await app.listen({ host: config.host, port }));
      apps.push(app);
    }
  } catch (err) {
    await Promise.all(apps.map((a) => a.close()));
    await engine.shutdown(0);
    throw err;
  }
  return {
    apps,
    urls,
    engine,
    usingEmbeddedModel,
    close: async () => {
      const drainMs = config.drainSeconds * 1000;
      // Closing the listeners waits for in-flight HTTP requests, which end as the engine drains.
      await Promise.all([...apps.map((a) => a.close()), engine.shutdown(drainMs)]);
    },
  };
}
