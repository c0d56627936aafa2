#!/usr/bin/python3
"""Builds the fixture files of the offline task suite in evaluation_examples/local/files/.

    /usr/bin/python3 scripts/make-local-fixtures.py

Deterministic and small (the folder stays well under 2 MB). Needs openpyxl, python-docx, PIL,
ffmpeg and soffice (for the .pptx, converted from a flat ODP written here). The generated files
are committed, so running the suite does not need this script; rerun it after changing a fixture.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import docx
import openpyxl
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'evaluation_examples', 'local', 'files')


def out(name: str) -> str:
    return os.path.join(OUT, name)


def text_files() -> None:
    with open(out('notes.txt'), 'w') as f:
        f.write('Meeting notes\n- buy milk\n- call Alice\n')
    with open(out('report.txt'), 'w') as f:
        f.write('Quarterly report\nRevenue grew by 12 percent.\n')
    with open(out('data.csv'), 'w') as f:
        f.write('city,population\nOslo,709000\nBergen,286000\nTrondheim,212000\nStavanger,146000\nDrammen,103000\nKristiansand,116000\n')
    with open(out('cleanup.sh'), 'w') as f:
        f.write('#!/bin/sh\necho cleaning up\n')
    with open(out('code.txt'), 'w') as f:
        f.write('Your confirmation code is: 48213\n')
    with open(out('paragraph.txt'), 'w') as f:
        f.write('Local desktops make agent evaluation reproducible.\n')
    for name in ('a.log', 'b.log', 'c.txt'):
        with open(out(name), 'w') as f:
            f.write(f'{name}\n')


def workbook(name: str, rows: list) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = 'Sheet1'
    for r in rows:
        ws.append(r)
    wb.save(out(name))


def spreadsheets() -> None:
    workbook('sales.xlsx', [['Product', 'Units', 'Price'], ['Apple', 12, 0.5], ['Banana', 30, 0.25], ['Cherry', 7, 3.0], ['Date', 15, 2.0]])
    workbook('scores.xlsx', [['Name', 'Score'], ['Ann', 81], ['Ben', 67], ['Cleo', 94], ['Dan', 73]])
    workbook('contacts.xlsx', [['Name', 'Phone'], ['Alice', '555-0101'], ['Bob', '555-0102'], ['Carol', '']])
    workbook('codes.xlsx', [['Item', 'Code'], ['Order 1', None]])


def documents() -> None:
    d = docx.Document()
    d.add_paragraph('Project Plan')
    d.add_paragraph('The quick brown fox jumps over the lazy dog.')
    d.save(out('plan.docx'))
    d = docx.Document()
    d.add_paragraph('Dear team,')
    d.save(out('memo.docx'))
    d = docx.Document()
    d.add_paragraph('Annual Summary')
    d.add_paragraph('This year went well.')
    d.save(out('summary.docx'))
    d = docx.Document()
    d.save(out('blank.docx'))


FODP = '''<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.presentation">
 <office:styles/>
 <office:automatic-styles>
  <style:page-layout style:name="PM1"><style:page-layout-properties fo:page-width="28cm" fo:page-height="15.75cm" style:print-orientation="landscape"/></style:page-layout>
 </office:automatic-styles>
 <office:master-styles><style:master-page style:name="Default" style:page-layout-name="PM1"/></office:master-styles>
 <office:body><office:presentation>
  <draw:page draw:name="Slide1" draw:master-page-name="Default" presentation:presentation-page-layout-name="AL1T0">
   <draw:frame presentation:class="title" presentation:placeholder="true" svg:x="1.4cm" svg:y="0.6cm" svg:width="25.2cm" svg:height="2.6cm"><draw:text-box/></draw:frame>
   <draw:frame presentation:class="subtitle" svg:x="1.4cm" svg:y="4cm" svg:width="25.2cm" svg:height="9cm"><draw:text-box><text:p>%s</text:p></draw:text-box></draw:frame>
  </draw:page>
 </office:presentation></office:body>
</office:document>
'''


def presentations() -> None:
    tmp = tempfile.mkdtemp()
    try:
        for name, body in (('deck.pptx', 'Numbers for the first quarter'), ('talk.pptx', 'Welcome everyone')):
            src = os.path.join(tmp, name.replace('.pptx', '.fodp'))
            with open(src, 'w') as f:
                f.write(FODP % body)
            subprocess.run(['soffice', f'-env:UserInstallation=file://{tmp}/profile', '--headless', '--convert-to', 'pptx', '--outdir', OUT, src],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def images() -> None:
    # left half red, right half blue: a horizontal flip swaps them
    img = Image.new('RGB', (240, 160), (220, 30, 30))
    img.paste((30, 60, 220), (120, 0, 240, 160))
    img.save(out('photo.png'))
    img = Image.new('RGB', (200, 200), (40, 160, 60))
    img.paste((250, 220, 40), (50, 50, 150, 150))
    img.save(out('logo.png'))


def media() -> None:
    ff = ['ffmpeg', '-y', '-hide_banner', '-loglevel', 'error']
    subprocess.run(ff + ['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5:duration=60', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=60',
                         '-c:v', 'libx264', '-preset', 'veryslow', '-crf', '40', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '16k', '-ac', '1',
                         '-fflags', '+bitexact', '-map_metadata', '-1', out('clip.mp4')], check=True)
    subprocess.run(ff + ['-f', 'lavfi', '-i', 'sine=frequency=660:duration=60', '-c:a', 'libvorbis', '-q:a', '-1', '-ac', '1', '-ar', '16000',
                         '-fflags', '+bitexact', '-map_metadata', '-1', out('chime.ogg')], check=True)


PAGE = '''<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 40px; }} h1 {{ color: #234; }}</style></head>
<body><h1>{title}</h1><p>{body}</p>{extra}</body></html>
'''


def pages() -> None:
    pages = {
        # titles start with the file's stem: the `open` setup step waits for a window title containing it
        'welcome.html': ('welcome: Local Portal', 'This page is stored on the local disk.', '<p><a href="docs.html">Read the docs</a></p>'),
        'docs.html': ('docs: Local Docs', 'Documentation for the offline suite.', ''),
        'news.html': ('news: Local News', 'Nothing happened today.', ''),
        'recipes.html': ('recipes: Pancakes', 'Pancakes: flour, milk, eggs.', ''),
    }
    for name, (title, body, extra) in pages.items():
        with open(out(name), 'w') as f:
            f.write(PAGE.format(title=title, body=body, extra=extra))


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    text_files()
    spreadsheets()
    documents()
    presentations()
    images()
    media()
    pages()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f'{len(os.listdir(OUT))} files, {total} bytes in {OUT}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
