/** Debian's python3 (with torch, numpy, PIL from scripts/install.sh --test) for reference checks. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../server/model/checkpoint/tiny.ts';

export const PYTHON = '/usr/bin/python3';
export const REFERENCE_SCRIPT = path.join(REPO_ROOT, 'test/reference/qwen2_vl_reference.py');

/** Why the PyTorch reference cannot run here, or null when it can. */
export function torchUnavailable(): string | null {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy, PIL'], { stdio: 'ignore' });
  return r.status === 0 ? null : `${PYTHON} lacks torch/numpy/PIL (bash scripts/install.sh --test installs them)`;
}

export interface ReferenceImage {
  path: string;
  resized_width?: number;
  resized_height?: number;
  min_pixels?: number;
  max_pixels?: number;
}

export interface ReferenceOutput {
  expanded_input_ids: number[];
  position_ids: number[][];
  rope_delta: number;
  image_grid_thw: number[][];
  tokens: number[];
  logprobs: number[];
  top_logprobs: [number, number][][];
}

/** Runs test/reference/qwen2_vl_reference.py on one request. */
export function runReference(req: {
  checkpoint: string;
  input_ids: number[];
  images: ReferenceImage[];
  max_new_tokens: number;
  top_logprobs: number;
  dump_dir?: string;
}): ReferenceOutput {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reference-'));
  try {
    const file = path.join(dir, 'request.json');
    fs.writeFileSync(file, JSON.stringify(req));
    const r = spawnSync(PYTHON, [REFERENCE_SCRIPT, file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`reference failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as ReferenceOutput;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
