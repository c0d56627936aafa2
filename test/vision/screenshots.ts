/**
 * Deterministic screenshot-like test images (desktop, terminal, web page, spreadsheet, office
 * document), rendered from SVG with sharp (librsvg + system fonts). Used by the PIL parity tests and
 * by bench/sharp-vs-pil.ts.
 */
import sharp from 'sharp';
import type { RgbImage } from '../../server/vision/rgb.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the quick brown fox jumps over lazy dog file edit view insert format tools help settings ' +
  'terminal open save close window document spreadsheet cell value total sum average chart ' +
  'network wireless bluetooth display sound power users accounts privacy search results ' +
  'python import numpy class def return git commit push status branch merge ls cd sudo apt'
).split(' ');

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function sentence(r: () => number, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(r() * WORDS.length)]!);
  return esc(out.join(' '));
}

function window(r: () => number, x: number, y: number, w: number, h: number, title: string, body: string): string {
  return `<g>
  <rect x="${x + 4}" y="${y + 6}" width="${w}" height="${h}" rx="8" fill="#000" opacity="0.25"/>
  <rect x="${x}" y="${y}" width="${w}" height="${h}" rx="8" fill="#fafafa" stroke="#bbb"/>
  <rect x="${x}" y="${y}" width="${w}" height="36" rx="8" fill="#e8e8e8"/>
  <text x="${x + w / 2}" y="${y + 24}" font-family="DejaVu Sans" font-size="14" font-weight="bold" text-anchor="middle" fill="#333">${esc(title)}</text>
  <circle cx="${x + w - 20}" cy="${y + 18}" r="7" fill="#e95420"/><circle cx="${x + w - 42}" cy="${y + 18}" r="7" fill="#aaa"/><circle cx="${x + w - 64}" cy="${y + 18}" r="7" fill="#aaa"/>
  ${body}
  </g>`;
}

function scene(kind: string, seed: number): string {
  const r = rng(seed);
  const W = 1920;
  const H = 1080;
  const parts: string[] = [];
  if (kind === 'desktop') {
    parts.push(`<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#772953"/><stop offset="1" stop-color="#e95420"/></linearGradient></defs>`);
    parts.push(`<rect width="${W}" height="${H}" fill="url(#g)"/>`);
    parts.push(`<rect width="${W}" height="32" fill="#1d1d1d"/><text x="960" y="22" font-family="DejaVu Sans" font-size="15" fill="#fff" text-anchor="middle">Tue 14:32</text>`);
    parts.push(`<rect y="32" width="72" height="${H - 32}" fill="#2b2b2b" opacity="0.9"/>`);
    for (let i = 0; i < 10; i++) {
      const c = `hsl(${Math.floor(r() * 360)},60%,55%)`;
      parts.push(`<rect x="12" y="${48 + i * 64}" width="48" height="48" rx="10" fill="${c}"/><text x="36" y="${80 + i * 64}" font-family="DejaVu Sans" font-size="20" fill="#fff" text-anchor="middle">${esc(WORDS[i]![0]!.toUpperCase())}</text>`);
    }
    for (let i = 0; i < 6; i++) {
      parts.push(`<rect x="${120}" y="${60 + i * 100}" width="56" height="56" rx="6" fill="#f5f5f5"/><text x="148" y="${136 + i * 100}" font-family="DejaVu Sans" font-size="12" fill="#fff" text-anchor="middle">${sentence(r, 1)}.txt</text>`);
    }
    let body = '';
    for (let i = 0; i < 22; i++) body += `<text x="300" y="${200 + i * 22}" font-family="DejaVu Sans" font-size="14" fill="#222">${sentence(r, 9)}</text>`;
    parts.push(window(r, 280, 120, 760, 560, 'Text Editor — notes.txt', body));
    let files = '';
    for (let i = 0; i < 16; i++) {
      files += `<rect x="1110" y="${330 + i * 26}" width="16" height="14" fill="#f4c542"/><text x="1134" y="${342 + i * 26}" font-family="DejaVu Sans" font-size="13" fill="#333">${sentence(r, 2)}</text><text x="1560" y="${342 + i * 26}" font-family="DejaVu Sans" font-size="13" fill="#777">${Math.floor(r() * 900)} kB</text>`;
    }
    parts.push(window(r, 1090, 280, 620, 480, 'Files — Home', files));
  } else if (kind === 'terminal') {
    parts.push(`<rect width="${W}" height="${H}" fill="#300a24"/>`);
    for (let i = 0; i < 46; i++) {
      const user = `<tspan fill="#8ae234" font-weight="bold">user@osworld</tspan><tspan fill="#fff">:</tspan><tspan fill="#729fcf" font-weight="bold">~/proj</tspan><tspan fill="#fff">$ </tspan>`;
      const line = i % 5 === 0 ? `${user}<tspan fill="#eee">${sentence(r, 4)}</tspan>` : `<tspan fill="#d3d7cf">${sentence(r, 3 + Math.floor(r() * 12))}</tspan>`;
      parts.push(`<text x="12" y="${24 + i * 22.5}" font-family="DejaVu Sans Mono" font-size="16">${line}</text>`);
    }
  } else if (kind === 'webpage') {
    parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
    parts.push(`<rect width="${W}" height="86" fill="#dee1e6"/><rect x="8" y="8" width="260" height="34" rx="8" fill="#fff"/><text x="24" y="31" font-family="DejaVu Sans" font-size="13" fill="#222">Search results - Browser</text>`);
    parts.push(`<rect x="90" y="48" width="1700" height="30" rx="15" fill="#fff"/><text x="110" y="68" font-family="DejaVu Sans" font-size="14" fill="#333">https://www.example.org/search?q=${sentence(r, 1)}</text>`);
    for (let i = 0; i < 8; i++) {
      const y = 140 + i * 110;
      parts.push(`<text x="180" y="${y}" font-family="DejaVu Sans" font-size="12" fill="#202124">example.org › ${sentence(r, 2)}</text>`);
      parts.push(`<text x="180" y="${y + 26}" font-family="DejaVu Sans" font-size="20" fill="#1a0dab">${sentence(r, 6)}</text>`);
      parts.push(`<text x="180" y="${y + 50}" font-family="DejaVu Sans" font-size="14" fill="#4d5156">${sentence(r, 18)}</text>`);
      parts.push(`<text x="180" y="${y + 70}" font-family="DejaVu Sans" font-size="14" fill="#4d5156">${sentence(r, 15)}</text>`);
    }
    parts.push(`<rect x="1300" y="130" width="480" height="420" rx="10" fill="#fff" stroke="#dadce0"/>`);
    parts.push(`<rect x="1320" y="150" width="440" height="200" fill="#8ab4f8"/><circle cx="1450" cy="240" r="50" fill="#fbbc04"/><polygon points="1320,350 1480,260 1600,350" fill="#34a853"/>`);
    for (let i = 0; i < 6; i++) parts.push(`<text x="1320" y="${390 + i * 22}" font-family="DejaVu Sans" font-size="14" fill="#333">${sentence(r, 7)}</text>`);
    parts.push(`<rect x="1320" y="505" width="120" height="32" rx="16" fill="#1a73e8"/><text x="1380" y="526" font-family="DejaVu Sans" font-size="14" fill="#fff" text-anchor="middle">Sign in</text>`);
  } else if (kind === 'spreadsheet') {
    parts.push(`<rect width="${W}" height="${H}" fill="#fff"/><rect width="${W}" height="120" fill="#f3f3f3"/>`);
    for (let i = 0; i < 14; i++) parts.push(`<rect x="${10 + i * 40}" y="50" width="28" height="28" rx="4" fill="#ddd"/><text x="${24 + i * 40}" y="70" font-family="DejaVu Sans" font-size="13" text-anchor="middle" fill="#333">${esc('BIU≡ΣA$%#fx↶↷⌫✓'[i]!)}</text>`);
    const cw = 110;
    const rh = 24;
    for (let c = 0; c < 17; c++) parts.push(`<rect x="${50 + c * cw}" y="130" width="${cw}" height="${rh}" fill="#f8f9fa" stroke="#c0c0c0"/><text x="${50 + c * cw + cw / 2}" y="147" font-family="DejaVu Sans" font-size="12" text-anchor="middle" fill="#555">${String.fromCharCode(65 + c)}</text>`);
    for (let row = 0; row < 38; row++) {
      const y = 154 + row * rh;
      parts.push(`<rect x="0" y="${y}" width="50" height="${rh}" fill="#f8f9fa" stroke="#c0c0c0"/><text x="25" y="${y + 17}" font-family="DejaVu Sans" font-size="12" text-anchor="middle" fill="#555">${row + 1}</text>`);
      for (let c = 0; c < 17; c++) {
        const v = r() < 0.7 ? (r() * 10000).toFixed(2) : sentence(r, 1);
        const sel = row === 5 && c === 3;
        parts.push(`<rect x="${50 + c * cw}" y="${y}" width="${cw}" height="${rh}" fill="#fff" stroke="${sel ? '#1a73e8' : '#e2e2e2'}" stroke-width="${sel ? 2 : 1}"/><text x="${50 + c * cw + cw - 6}" y="${y + 17}" font-family="DejaVu Sans" font-size="13" text-anchor="end" fill="#222">${v}</text>`);
      }
    }
  } else {
    // office document with a photo-like image (smooth gradients + noise) and small text
    parts.push(`<rect width="${W}" height="${H}" fill="#e6e6e6"/><rect x="460" y="60" width="1000" height="1020" fill="#fff"/>`);
    parts.push(`<text x="540" y="150" font-family="DejaVu Serif" font-size="34" font-weight="bold" fill="#111">${sentence(r, 4)}</text>`);
    for (let i = 0; i < 14; i++) parts.push(`<text x="540" y="${200 + i * 20}" font-family="DejaVu Serif" font-size="13" fill="#222">${sentence(r, 16)}</text>`);
    let dots = '';
    for (let i = 0; i < 900; i++) dots += `<circle cx="${560 + r() * 800}" cy="${490 + r() * 340}" r="${1 + r() * 9}" fill="hsl(${Math.floor(100 + r() * 80)},${Math.floor(30 + r() * 50)}%,${Math.floor(20 + r() * 50)}%)" opacity="0.8"/>`;
    parts.push(`<defs><radialGradient id="sky" cx="0.3" cy="0.2" r="0.9"><stop offset="0" stop-color="#fff7d6"/><stop offset="0.4" stop-color="#7fb3e6"/><stop offset="1" stop-color="#2a4d7a"/></radialGradient></defs>`);
    parts.push(`<rect x="540" y="470" width="840" height="380" fill="url(#sky)"/>${dots}`);
    for (let i = 0; i < 9; i++) parts.push(`<text x="540" y="${890 + i * 20}" font-family="DejaVu Serif" font-size="13" fill="#222">${sentence(r, 16)}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join('\n')}</svg>`;
}

export const SCREENSHOT_KINDS = ['desktop', 'terminal', 'webpage', 'spreadsheet', 'document'] as const;
export type ScreenshotKind = (typeof SCREENSHOT_KINDS)[number];

/** A 1920x1080 RGB screenshot-like image. */
export async function renderScreenshot(kind: ScreenshotKind, seed = 1): Promise<RgbImage> {
  const svg = Buffer.from(scene(kind, seed));
  const { data, info } = await sharp(svg, { density: 72 })
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== 1920 || info.height !== 1080 || info.channels !== 3) {
    throw new Error(`rendered ${info.width}x${info.height}x${info.channels}`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: 1920, height: 1080 };
}
