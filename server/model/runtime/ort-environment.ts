/**
 * ONNX Runtime switches that it reads from the process environment when it creates a session.
 * This module does not import ONNX Runtime, so the server's main thread can set them before it
 * starts the engine worker without loading it.
 */

/**
 * GroupQueryAttention's tiled (flash) CPU kernel is slower than its full score matrix when a prompt
 * extends a long cached history, as every agent step after the first does: an int4 step's prompt of
 * 710 new tokens over 7,680 cached took 23.7 s with it and 19.5 s without (docs/performance.md,
 * "Prompt attention over a history").
 */
export const ORT_ENVIRONMENT = { ORT_GQA_DISABLE_FLASH_ATTENTION: '1' } as const;

/**
 * Sets the variables of ORT_ENVIRONMENT that the user has not set. A worker thread's process.env is a
 * copy that ONNX Runtime does not read: call this on the main thread before starting one.
 */
export function applyOrtEnvironment(): void {
  for (const [name, value] of Object.entries(ORT_ENVIRONMENT)) process.env[name] ??= value;
}
