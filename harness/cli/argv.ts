/**
 * Flag spelling shared by the light CLIs (pass-at-n, compare-runs, run-multienv report): OSWorld's
 * flags use underscores; both spellings work by normalising to dashes. Its own module so that these
 * CLIs do not load the whole harness (envs, agents, eval) just to read a result folder.
 */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    if (!a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    return name.replace(/_/g, '-') + (eq < 0 ? '' : a.slice(eq));
  });
}
