/** What the runner needs from an agent: one prediction per step, reset between tasks. */
export interface StepPrediction {
  prediction: string;
  /** pyautogui code strings and/or OSWorld control words DONE, WAIT, FAIL. */
  actions: string[];
  /**
   * Model-call details for the trajectory (latency, tokens, errors). `retries`: how many times the
   * call was retried because the server was unreachable or answered 429/5xx, `retryWaitMs` the
   * backoff waited, `retryError` the last such error.
   */
  calls?: ModelCall[];
  /** Set when the agent gave up on this step ("client error"): every try was unparsable, or the model answered 4xx. */
  gaveUp?: 'parse' | 'model';
  /** Things worth a look (e.g. coordinates outside 0..1000 in relative mode: a likely coordinate-mode mismatch). */
  warnings?: string[];
}

export interface Agent {
  reset(taskId: string): void;
  predict(instruction: string, screenshot: Uint8Array): Promise<StepPrediction>;
}

/** One model request of a step, as traj.jsonl records it. */
export interface ModelCall {
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
  error?: string;
  retries?: number;
  retryWaitMs?: number;
  retryError?: string;
}
