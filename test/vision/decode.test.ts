import t, { type Test } from 'tap';
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import { decodeImage, ImageError, sniffImageType } from '../../server/vision/decode.ts';
import { HERE, pilDecodeRef, pilMakeImage, pilUnavailableReason } from './pyref.ts';

const W = 61;
const H = 37;
const rgba = Buffer.alloc(W * H * 4);
for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37 + (i >> 5)) & 255;
const raw4 = { raw: { width: W, height: H, channels: 4 as const } };
const rgbOf = (buf: Buffer) => {
  const out = new Uint8Array(W * H * 3);
  for (let p = 0; p < W * H; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = buf[p * 4 + c]!;
  return out;
};

async function expectError(t: Test, bytes: Uint8Array, code: string, name: string, limits = {}) {
  try {
    await decodeImage(bytes, limits);
    t.fail(`${name}: decoded, expected ${code}`);
  } catch (err) {
    t.type(err, ImageError, `${name}: ImageError`);
    const e = err as ImageError;
    t.equal(e.code, code, `${name}: ${e.code} (${e.message})`);
    t.notMatch(e.message, /\n/, `${name}: one-line message`);
  }
}

/** A PNG chunk: length, type, data, CRC. */
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/** A real decompression bomb: 8-bit grayscale side x side of zeros, deflated (a few hundred kB). */
function pngBomb(side: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc((side + 1) * side); // filter byte 0 + zero samples per row
  const idat = deflateSync(raw, { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

t.test('PNG, JPEG, WebP decode to RGB', async (t) => {
  const png = await sharp(rgba, raw4).removeAlpha().png().toBuffer();
  const d = await decodeImage(png);
  t.same([d.width, d.height, d.format, d.data.length], [W, H, 'png', W * H * 3]);
  t.same(Buffer.from(d.data), Buffer.from(rgbOf(rgba)), 'lossless PNG round-trips');
  const webp = await decodeImage(await sharp(rgba, raw4).removeAlpha().webp({ lossless: true }).toBuffer());
  t.same([webp.format, Buffer.from(webp.data).equals(Buffer.from(rgbOf(rgba)))], ['webp', true], 'lossless WebP round-trips');
  const jpg = await decodeImage(await sharp(rgba, raw4).removeAlpha().jpeg({ quality: 90 }).toBuffer());
  t.same([jpg.format, jpg.width, jpg.height], ['jpeg', W, H]);
  const fixture = await decodeImage(readFileSync(join(HERE, '../fixtures/images/screenshot-desktop-1920x1080.png')));
  t.same([fixture.width, fixture.height], [1920, 1080]);
});

t.test('alpha is dropped, not composited (PIL convert("RGB"))', async (t) => {
  const a = Buffer.from(rgba);
  for (let p = 0; p < W * H; p++) a[p * 4 + 3] = p % 3 === 0 ? 0 : 100; // transparent pixels keep their colour
  const d = await decodeImage(await sharp(a, raw4).png().toBuffer());
  t.same(Buffer.from(d.data), Buffer.from(rgbOf(a)));
  const wp = await decodeImage(await sharp(a, raw4).webp({ lossless: true, exact: true }).toBuffer());
  t.same(Buffer.from(wp.data), Buffer.from(rgbOf(a)), 'WebP with alpha');
});

t.test('grayscale and 16-bit', async (t) => {
  const gray = Buffer.alloc(W * H);
  for (let i = 0; i < gray.length; i++) gray[i] = (i * 13) & 255;
  const d = await decodeImage(await sharp(gray, { raw: { width: W, height: H, channels: 1 } }).png().toBuffer());
  t.ok(d.data.every((v, i) => v === gray[Math.floor(i / 3)]), 'L -> R=G=B');
  // 16-bit RGB: the high byte of each sample (as PIL)
  const rgb16 = await sharp(rgba, raw4).removeAlpha().toColourspace('rgb16').png().toBuffer();
  t.equal((await sharp(rgb16).metadata()).depth, 'ushort', 'fixture really is 16-bit');
  const d16 = await decodeImage(rgb16);
  t.same(Buffer.from(d16.data), Buffer.from(rgbOf(rgba)));
});

t.test('same pixels as PIL Image.open().convert("RGB")', { skip: pilUnavailableReason() ?? false }, async (t) => {
  const cases: [string, Uint8Array][] = [
    ['RGBA png', await sharp(rgba, raw4).png().toBuffer()],
    ['palette png', await sharp(rgba, raw4).png({ palette: true }).toBuffer()],
    ['jpeg', await sharp(rgba, raw4).removeAlpha().jpeg({ quality: 80 }).toBuffer()],
    ['jpeg 4:4:4', await sharp(rgba, raw4).removeAlpha().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['progressive jpeg', await sharp(rgba, raw4).removeAlpha().jpeg({ quality: 70, progressive: true }).toBuffer()],
    ['gray jpeg', await sharp(rgba, raw4).extractChannel(1).toColourspace('b-w').jpeg().toBuffer()],
    ['lossy webp', await sharp(rgba, raw4).removeAlpha().webp({ quality: 70 }).toBuffer()],
    ['lossless webp with alpha', await sharp(rgba, raw4).webp({ lossless: true, exact: true }).toBuffer()],
    ['png with a Display P3 ICC profile (ignored, as PIL does)', await sharp(rgba, raw4).removeAlpha().withIccProfile('p3').png().toBuffer()],
    ['LA png (PIL)', pilMakeImage(`a = (np.arange(37*61*2) * 7 % 256).astype(np.uint8).reshape(37, 61, 2)\nImage.fromarray(a, 'LA').save(sys.argv[1], 'PNG')`)],
    ['P png with tRNS (PIL)', pilMakeImage(`im = Image.fromarray((np.arange(37*61) % 200).astype(np.uint8).reshape(37, 61), 'L').convert('P')\nim.info['transparency'] = 5\nim.save(sys.argv[1], 'PNG', transparency=5)`)],
    ['1-bit png (PIL)', pilMakeImage(`Image.fromarray(((np.arange(37*61) % 3) == 0).reshape(37, 61)).save(sys.argv[1], 'PNG')`)],
    ['RGB jpeg (PIL encoder)', pilMakeImage(`a = (np.arange(37*61*3) * 11 % 256).astype(np.uint8).reshape(37, 61, 3)\nImage.fromarray(a).save(sys.argv[1], 'JPEG', quality=85)`)],
  ];
  for (const [name, bytes] of cases) {
    const ours = await decodeImage(bytes);
    const ref = pilDecodeRef(bytes);
    t.same([ours.width, ours.height], [ref.width, ref.height], `${name} (${ref.mode}): size`);
    let diff = 0;
    for (let i = 0; i < ref.data.length; i++) if (ours.data[i] !== ref.data[i]) diff++;
    t.equal(diff, 0, `${name} (${ref.mode}): identical bytes`);
  }
});

t.test('16-bit grayscale: high byte (PIL would clip to 255; deliberate difference)', { skip: pilUnavailableReason() ?? false }, async (t) => {
  const bytes = pilMakeImage(`a = (np.arange(37*61, dtype=np.uint32) * 97 % 65536).astype(np.uint16).reshape(37, 61)\nImage.fromarray(a, 'I;16').save(sys.argv[1], 'PNG')`);
  const d = await decodeImage(bytes);
  let bad = 0;
  for (let i = 0; i < 37 * 61; i++) {
    const hi = ((i * 97) % 65536) >> 8;
    if (d.data[i * 3] !== hi || d.data[i * 3 + 1] !== hi || d.data[i * 3 + 2] !== hi) bad++;
  }
  t.equal(bad, 0);
});

t.test('animated WebP: first frame only', async (t) => {
  const frames = Buffer.alloc(W * H * 3 * 3);
  for (let f = 0; f < 3; f++) frames.fill(f * 100 + 20, f * W * H * 3, (f + 1) * W * H * 3);
  const anim = await sharp(frames, { raw: { width: W, height: H * 3, channels: 3, pageHeight: H } as never })
    .webp({ lossless: true, loop: 0 })
    .toBuffer();
  t.equal((await sharp(anim, { animated: true }).metadata()).pages, 3, 'fixture has 3 frames');
  const d = await decodeImage(anim);
  t.same([d.width, d.height], [W, H]);
  t.ok(d.data.every((v) => v === 20), 'pixels of frame 0');
});

t.test('errors', async (t) => {
  const png = await sharp(rgba, raw4).png().toBuffer();
  const jpg = await sharp(rgba, raw4).removeAlpha().jpeg().toBuffer();
  await expectError(t, new Uint8Array(0), 'invalid_image', 'empty');
  await expectError(t, Buffer.from('hello, this is not an image at all'), 'invalid_image', 'text bytes');
  await expectError(t, Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) & 255)), 'invalid_image', 'random bytes');
  await expectError(t, png.subarray(0, 60), 'invalid_image', 'PNG cut inside the header chunks');
  await expectError(t, png.subarray(0, Math.floor(png.length * 0.6)), 'invalid_image', 'truncated PNG');
  await expectError(t, jpg.subarray(0, Math.floor(jpg.length * 0.6)), 'invalid_image', 'truncated JPEG');
  const corrupt = Buffer.from(png);
  for (let i = 80; i < corrupt.length - 20; i += 7) corrupt[i] = corrupt[i]! ^ 0x5a;
  await expectError(t, corrupt, 'invalid_image', 'corrupt PNG data');
  await expectError(t, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), jpg]), 'invalid_image', 'PNG magic + JPEG body');

  const bomb = pngBomb(20000);
  t.ok(bomb.length < 1_000_000, `20000x20000 bomb is ${bomb.length} bytes`);
  await expectError(t, bomb, 'image_too_large', '20000x20000 PNG bomb');
  await expectError(t, png, 'image_too_large', 'over the byte limit', { maxBytes: 100 });
  await expectError(t, png, 'image_too_large', 'over a small pixel limit', { maxPixels: 1000 });

  await expectError(t, await sharp(rgba, raw4).gif().toBuffer(), 'unsupported_image_type', 'GIF');
  await expectError(t, await sharp(rgba, raw4).tiff().toBuffer(), 'unsupported_image_type', 'TIFF');
  const bmp = Buffer.alloc(58);
  bmp.write('BM', 0, 'latin1');
  await expectError(t, bmp, 'unsupported_image_type', 'BMP');
  await expectError(t, Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), 'unsupported_image_type', 'SVG');
  t.equal(sniffImageType(Buffer.from('<?xml version="1.0"?><svg/>')), 'svg');
});
