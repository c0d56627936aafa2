/**
 * Incremental detokenisation: text deltas as tokens arrive. Byte-level BPE tokens can
 * end in the middle of a UTF-8 character, so a delta is held back while the decoded
 * tail is a replacement character, and decoding restarts from a recent offset (not
 * from the first token) to keep each step cheap.
 */
export interface Decoder {
  decode(ids: readonly number[], skipSpecialTokens: boolean): string;
}

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(
    private readonly decoder: Decoder,
    private readonly skipSpecialTokens: boolean,
  ) {}

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.decoder.decode(ids, this.skipSpecialTokens);
  }

  /** Adds one token, returns the newly completed text (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    if (after.length > before.length && !after.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return after.slice(before.length);
    }
    return '';
  }

  /** Whatever is still held back (an incomplete character at the end), as decoded. */
  flush(): string {
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : '';
  }
}
