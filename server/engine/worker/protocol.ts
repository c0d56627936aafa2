/** Messages between the HTTP thread and the engine worker thread. */
import type { ModelOptions } from '../../model/load-model.ts';
import type { EngineStats } from '../engine.ts';
import type { EngineEvent, EngineRequest } from '../request.ts';

export type WorkerRequest = Omit<EngineRequest, 'signal'>;

export interface WorkerInit {
  checkpointDir: string;
  options: ModelOptions;
}

export interface ModelInfo {
  maxModelLen: number;
  slots: number;
  buildMs: number;
  loadMs: number;
}

export type ToWorker =
  | { type: 'generate'; id: number; request: WorkerRequest }
  | { type: 'abort'; id: number }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'load-error'; message: string }
  | { type: 'event'; id: number; event: EngineEvent }
  | { type: 'stats'; stats: EngineStats };
