/**
 * The engine's thread. ONNX Runtime's session.run() blocks the thread that calls it, so the
 * model lives here and the HTTP thread stays responsive. It loads the model, runs requests
 * as they arrive and streams their events back; stats go out when a request arrives and after
 * every event.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadModel } from '../../model/load-model.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('engine-worker must run in a worker thread');
const post = (msg: FromWorker): void => port.postMessage(msg);
const init = workerData as WorkerInit;

try {
  const model = await loadModel(init.checkpointDir, init.options);
  const { engine } = model;
  const aborts = new Map<number, AbortController>();

  const run = async (id: number, controller: AbortController, request: ToWorker & { type: 'generate' }): Promise<void> => {
    try {
      const events = engine.generate({ ...request.request, signal: controller.signal });
      // Queued or prefilling now: the gauges show it before the first token, which may be seconds away.
      post({ type: 'stats', stats: { ...engine.stats } });
      for await (const event of events) {
        post({ type: 'event', id, event });
        post({ type: 'stats', stats: { ...engine.stats } });
      }
    } finally {
      aborts.delete(id);
      post({ type: 'stats', stats: { ...engine.stats } });
    }
  };

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'generate') {
      const controller = new AbortController();
      aborts.set(msg.id, controller);
      void run(msg.id, controller, msg);
    } else if (msg.type === 'abort') {
      aborts.get(msg.id)?.abort();
    } else if (msg.type === 'shutdown') {
      void engine.idle().then(async () => {
        await model.runner.release();
        process.exit(0); // in a worker, ends this thread only
      });
    }
  });
  post({
    type: 'ready',
    info: { maxModelLen: model.maxModelLen, slots: model.runner.kv.shape.slots, buildMs: model.buildMs, loadMs: model.loadMs },
  });
} catch (err) {
  post({ type: 'load-error', message: err instanceof Error ? err.message : String(err) });
}
