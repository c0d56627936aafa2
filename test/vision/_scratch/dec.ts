import sharp from 'sharp';
import { decodeImage } from '/work/main/server/vision/decode.ts';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const W=61,H=37;
const rgba = Buffer.alloc(W*H*4); for (let i=0;i<rgba.length;i++) rgba[i]=(i*37+(i>>5))&255;
const cases: Record<string, Buffer> = {
  rgba_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).png().toBuffer(),
  rgb_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).removeAlpha().png().toBuffer(),
  gray_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).extractChannel(0).toColourspace('b-w').png().toBuffer(),
  graya_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).extractChannel(0).toColourspace('b-w').joinChannel(Buffer.alloc(W*H,128),{raw:{width:W,height:H,channels:1}}).png().toBuffer(),
  pal_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).png({palette:true}).toBuffer(),
  rgb16_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).removeAlpha().toColourspace('rgb16').png().toBuffer(),
  jpeg: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).removeAlpha().jpeg({quality:80}).toBuffer(),
  jpeg_gray: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).extractChannel(1).toColourspace('b-w').jpeg({quality:80}).toBuffer(),
  webp: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).webp({lossless:true}).toBuffer(),
  webp_lossy: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).removeAlpha().webp({quality:70}).toBuffer(),
  p3_png: await sharp(rgba,{raw:{width:W,height:H,channels:4}}).removeAlpha().withIccProfile('p3').png().toBuffer(),
};
for (const [name, buf] of Object.entries(cases)) {
  writeFileSync('/tmp/dec_'+name, buf);
  const d = await decodeImage(buf);
  const py = execFileSync('/usr/bin/python3', ['-c', `
import sys
from PIL import Image
im = Image.open('/tmp/dec_${name}'); sys.stderr.write(im.mode+' ')
sys.stdout.buffer.write(im.convert('RGB').tobytes())`]);
  let diff=0, maxd=0; for (let i=0;i<d.data.length;i++){ const e=Math.abs(d.data[i]!-py[i]!); if(e){diff++; maxd=Math.max(maxd,e);} }
  console.log(name, d.width, d.height, d.format, 'diffs', diff, 'max', maxd);
}
