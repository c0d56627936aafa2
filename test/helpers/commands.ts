/** Whether a command runs and exits 0 here (tests skip with a reason when a tool is missing). */
import { execFileSync } from 'node:child_process';

export function commandWorks(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
