/** OSWorld's compare_pdfs (metrics/chrome.py): mean fuzz.ratio of the PDFs' text (unpdf / pdf.js). */
import fs from 'node:fs';
import { extractText, getDocumentProxy } from 'unpdf';
import type { Metric } from '../types.ts';
import { matchValueToRule } from './rules.ts';
import { fuzzRatio } from './table.ts';

export async function pdfText(file: string): Promise<string> {
  const pdf = await getDocumentProxy(new Uint8Array(fs.readFileSync(file)));
  const { text } = await extractText(pdf, { mergePages: true });
  return text.trim();
}

export const comparePdfs: Metric = async (result, expected) => {
  const r = Array.isArray(expected) ? (result as unknown[]) : [result];
  const e = Array.isArray(expected) ? expected : [expected];
  let score = 0;
  for (let i = 0; i < Math.min(r.length, e.length); i++) {
    try {
      score += fuzzRatio(await pdfText(String(r[i])), await pdfText(String(e[i]))) / 100;
    } catch {
      /* OSWorld logs and counts 0 */
    }
  }
  return e.length ? score / e.length : 0;
};

/** check_pdf_pages: operator rules.relation (eq, lt, ...) between the page count and rules.ref_value. */
export const checkPdfPages: Metric = async (result, rules) => {
  if (typeof result !== 'string' || !fs.existsSync(result)) return 0;
  const r = (rules ?? {}) as { relation?: string; ref_value?: number };
  const n = (await getDocumentProxy(new Uint8Array(fs.readFileSync(result)))).numPages;
  return matchValueToRule(n, { method: String(r.relation), ref: r.ref_value }) ? 1 : 0;
};
