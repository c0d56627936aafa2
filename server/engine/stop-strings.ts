/**
 * Stop strings over streamed text. The matched stop string is not part of the output
 * (OpenAI and vLLM behaviour). Text that could still become the start of a stop string
 * is held back, so a streamed answer never shows a stop string's first characters.
 */
export class StopStringMatcher {
  private text = '';
  private emitted = 0;
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds a delta; returns text safe to emit now and whether a stop string matched. */
  push(delta: string): { emit: string; stopped: boolean } {
    const searchFrom = Math.max(0, this.text.length - this.longest + 1);
    this.text += delta;
    if (this.stops.length === 0) return { emit: this.take(this.text.length), stopped: false };
    let cut = -1;
    for (const stop of this.stops) {
      if (stop.length === 0) continue;
      const at = this.text.indexOf(stop, searchFrom);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      return { emit: this.take(cut), stopped: true };
    }
    return { emit: this.take(this.text.length - this.heldBack()), stopped: false };
  }

  /** At the end of generation nothing is held back any more. */
  finish(): string {
    return this.take(this.text.length);
  }

  get fullText(): string {
    return this.text;
  }

  private heldBack(): number {
    // Longest suffix of the text that is a proper prefix of some stop string.
    for (let n = Math.min(this.longest - 1, this.text.length - this.emitted); n > 0; n--) {
      const tail = this.text.slice(this.text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }

  private take(upTo: number): string {
    if (upTo <= this.emitted) return '';
    const out = this.text.slice(this.emitted, upTo);
    this.emitted = upTo;
    return out;
  }
}
