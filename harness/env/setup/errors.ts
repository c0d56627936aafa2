/**
 * Failures that are not the agent's: the env could not be prepared or read. The runner
 * retries such a task and, if it keeps failing, records an infrastructure error instead of
 * a score.
 */
export class InfrastructureError extends Error {
  override name = 'InfrastructureError';
}

/** A setup step, getter or metric this project does not implement (or cannot here). */
export class UnsupportedError extends InfrastructureError {
  override name = 'UnsupportedError';
}
