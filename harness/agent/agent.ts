/** What the runner needs from an agent: one prediction per step, reset between tasks. */
export interface StepPrediction {
  prediction: string;
  /** pyautogui code strings and/or OSWorld control words DONE, WAIT, FAIL. */
  actions: string[];
  /** Model-call details for the trajectory (latency, tokens, errors). */
  calls?: { latencyMs: number; promptTokens: number; completionTokens: number; error?: string }[];
}

export interface Agent {
  reset(taskId: string): void;
  predict(instruction: string, screenshot: Uint8Array): Promise<StepPrediction>;
}
