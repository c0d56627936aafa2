/**
 * Starts the whole server: the engine worker (which loads the model in the background), one
 * Fastify app per configured port, and a shutdown that drains running requests.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { ensureTinyCheckpoint } from './model/checkpoint/tiny.ts';
import { openCheckpoint } from './model/checkpoint/checkpoint.ts';
import { ChatTokenizer } from './model/tokenizer.ts';
import { EngineClient } from './engine/worker/engine-client.ts';
import { buildApp, type AppDeps } from './api/app.ts';
import { ServerMetrics } from './api/metrics.ts';
import { modelOptionsFor, type ServerConfig } from './config.ts';
import { maxTokenBytesOf, specialTokensPerMessage, type ServingContext } from './chat/prepare-request.ts';
import { PreparedImageCache } from './vision/prepare-image.ts';

/** After the drain time, how long the engine may take to reach a step boundary before it is killed. */
const STOP_GRACE_MS = 120_000;

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
  const maxTokenBytes = maxTokenBytesOf(JSON.parse(readFileSync(checkpoint.files.tokenizerJson, 'utf8')) as Parameters<typeof maxTokenBytesOf>[0]);
  const engine = new EngineClient(modelPath, modelOptionsFor(config), { maxQueued: config.queueSize });
  let serving: ServingContext | null = null;
  void engine.ready.then(
    (info) => {
      const images = new PreparedImageCache(config.preparedImageCacheMiB * 1024 ** 2);
      serving = {
        config,
        model: checkpoint.config,
        tokenizer,
        maxModelLen: info.maxModelLen,
        maxTokenBytes,
        specialTokensPerMessage: specialTokensPerMessage(tokenizer),
        images,
      };
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
    closing: () => closing,
    requests: new Set(),
  };
  let closing = false;
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
      closing = true;
      // Closing the listeners refuses new connections and waits for in-flight HTTP requests,
      // which end as the engine drains.
      const appsClosed = Promise.all(apps.map((a) => a.close()));
      const deadline = Date.now() + config.drainSeconds * 1000;
      while (engine.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // Past the drain time: stop what still runs. The engine stops a request at its next step
      // boundary (a decode step, or the prefill in progress); the worker is then shut down
      // cleanly, never terminated inside an ONNX Runtime call (that aborts the whole process).
      for (const controller of deps.requests ?? []) controller.abort();
      await Promise.all([appsClosed, engine.shutdown(STOP_GRACE_MS)]);
    },
  };
}
