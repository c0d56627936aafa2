// Office metrics against files made by the real apps: xlsx with python3-openpyxl (and LibreOffice's
// conversion), docx with python3-docx, pptx converted by LibreOffice from a flat ODP.
import t from 'tap';
import { commandWorks } from '../../helpers/commands.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareTable, compareCsv } from '../../../harness/eval/metrics/table.ts';
import { compareDocxFiles, compareDocxTables, compareLineSpacing, containsPageBreak } from '../../../harness/eval/metrics/docs.ts';
import { comparePptxFiles, checkSlideOrientationPortrait } from '../../../harness/eval/metrics/slides.ts';
import { comparePdfs } from '../../../harness/eval/metrics/pdf.ts';

const PY = '/usr/bin/python3';
const pyOk = commandWorks(PY, ['-c', 'import openpyxl, docx']);
const sofficeOk = commandWorks('soffice', ['--version']);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-office-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const py = (code: string) => execFileSync(PY, ['-c', code], { cwd: dir });
const soffice = (file: string, to: string) => execFileSync('soffice', ['--headless', '--convert-to', to, '--outdir', dir, file], { stdio: 'ignore', timeout: 120_000 });
const f = (name: string) => path.join(dir, name);

t.test('compare_table', { skip: pyOk ? false : 'python3-openpyxl missing' }, async (t) => {
  py(`
import openpyxl
from openpyxl.styles import Font, PatternFill
def make(name, b3=30, bold=True, fill='FFFF0000', hidden=False):
    wb = openpyxl.Workbook(); ws = wb.active; ws.title = 'Sheet1'
    ws.append(['Name', 'Score']); ws.append(['a', 10]); ws.append(['b', b3]); ws['B4'] = 3.14159265
    ws['A1'].font = Font(bold=bold); ws['B2'].fill = PatternFill('solid', fgColor=fill)
    ws.row_dimensions[3].hidden = hidden
    ws.freeze_panes = 'A2'
    wb.create_sheet('Other')['A1'] = 'x'
    wb.save(name)
make('gold.xlsx'); make('same.xlsx'); make('wrongcell.xlsx', b3=31); make('notbold.xlsx', bold=False)
make('hidden.xlsx', hidden=True)
`);
  const data = { rules: [{ type: 'sheet_data', sheet_idx0: 0, sheet_idx1: 'EI0' }] };
  t.equal(await compareTable(f('same.xlsx'), f('gold.xlsx'), data), 1, 'same data');
  t.equal(await compareTable(f('wrongcell.xlsx'), f('gold.xlsx'), data), 0, 'one wrong cell');
  t.equal(await compareTable(f('missing.xlsx'), f('gold.xlsx'), data), 0, 'missing result file');
  t.equal(await compareTable(f('same.xlsx'), f('gold.xlsx'), { rules: [{ type: 'sheet_name' }] }), 1);
  const cell = (ref: number, method = 'approx:0.1') => ({ rules: [{ type: 'check_cell', sheet_idx: 0, coordinate: 'B3', props: { value: { method, ref } } }] });
  t.equal(await compareTable(f('same.xlsx'), null, cell(30.05)), 1, 'check_cell approx');
  t.equal(await compareTable(f('wrongcell.xlsx'), null, cell(30)), 0, 'check_cell off by 1');
  const bold = { rules: [{ type: 'check_cell', sheet_idx: 0, coordinate: 'A1', props: { font_bold: { method: 'eq', ref: true } } }] };
  t.equal(await compareTable(f('same.xlsx'), null, bold), 1, 'bold');
  t.equal(await compareTable(f('notbold.xlsx'), null, bold), 0, 'not bold');
  const style = { rules: [{ type: 'style', sheet_idx0: 0, sheet_idx1: 'EI0', props: ['font_bold', 'bgcolor'] }] };
  t.equal(await compareTable(f('same.xlsx'), f('gold.xlsx'), style), 1);
  t.equal(await compareTable(f('notbold.xlsx'), f('gold.xlsx'), style), 0, 'style differs');
  const freeze = { rules: [{ type: 'freeze', sheet_idx0: 0, sheet_idx1: 'EI0' }] };
  t.equal(await compareTable(f('same.xlsx'), f('gold.xlsx'), freeze), 1);
  const rows = { rules: [{ type: 'row_props', sheet_idx0: 0, sheet_idx1: 'EI0', props: ['hidden'] }] };
  t.equal(await compareTable(f('hidden.xlsx'), f('hidden.xlsx'), rows), 1);
  t.equal(await compareTable(f('same.xlsx'), f('hidden.xlsx'), rows), 0, 'row not hidden');
  const fuzzy = { rules: [{ type: 'sheet_fuzzy', sheet_idx0: 0, sheet_idx1: 'EI0', rules: [{ range: ['A1:B3'], type: 'exact_match' }] }] };
  t.equal(await compareTable(f('same.xlsx'), f('gold.xlsx'), fuzzy), 1);
  t.equal(await compareTable(f('wrongcell.xlsx'), f('gold.xlsx'), fuzzy), 0);
  await t.rejects(async () => compareTable(f('same.xlsx'), f('gold.xlsx'), { rules: [{ type: 'sparkline', sheet_idx0: 0, sheet_idx1: 'EI0' }] }), /not implemented/);
});

t.test('compare_table on LibreOffice output (cached formula values)', { skip: sofficeOk ? false : 'soffice missing' }, async (t) => {
  fs.writeFileSync(f('calc.csv'), 'x,y\n1,2\n3,4\n');
  soffice(f('calc.csv'), 'xlsx');
  fs.copyFileSync(f('calc.xlsx'), f('calc-gold.xlsx'));
  fs.writeFileSync(f('calc2.csv'), 'x,y\n1,2\n3,5\n');
  soffice(f('calc2.csv'), 'xlsx');
  const data = { rules: [{ type: 'sheet_data', sheet_idx0: 0, sheet_idx1: 'EI0' }] };
  t.equal(await compareTable(f('calc.xlsx'), f('calc-gold.xlsx'), data), 1);
  t.equal(await compareTable(f('calc2.xlsx'), f('calc-gold.xlsx'), data), 0);
  t.equal(await compareCsv(f('calc.csv'), f('calc.csv'), {}), 1);
  t.equal(await compareCsv(f('calc2.csv'), f('calc.csv'), {}), 0);
});

t.test('compare_docx_files / tables / line spacing / page break', { skip: pyOk ? false : 'python3-docx missing' }, async (t) => {
  py(`
import docx
from docx.enum.text import WD_BREAK
def make(name, text='Second paragraph', cell='B', spacing=None, brk=False):
    d = docx.Document(); d.add_paragraph('First paragraph')
    p = d.add_paragraph(text)
    if spacing: p.paragraph_format.line_spacing = spacing
    if brk: d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    tb = d.add_table(rows=1, cols=2); tb.cell(0,0).text = 'A'; tb.cell(0,1).text = cell
    d.save(name)
make('gold.docx'); make('same.docx'); make('text.docx', text='Second  paragraph changed'); make('cell.docx', cell='C')
make('spaced.docx', spacing=2.0); make('break.docx', brk=True)
`);
  t.equal(await compareDocxFiles(f('same.docx'), f('gold.docx'), {}), 1);
  t.equal(await compareDocxFiles(f('text.docx'), f('gold.docx'), {}), 0, 'different text');
  t.equal(await compareDocxFiles(f('same.docx'), f('gold.xlsx'), {}), 0, 'different file types');
  const fuzzy = await compareDocxFiles(f('text.docx'), f('gold.docx'), { content_only: true });
  t.ok(fuzzy > 0.8 && fuzzy < 1, `content_only similarity ${fuzzy}`);
  t.equal(await compareDocxTables(f('same.docx'), f('gold.docx'), {}), 1);
  t.equal(await compareDocxTables(f('cell.docx'), f('gold.docx'), {}), 0, 'a table cell differs');
  t.equal(await compareLineSpacing(f('same.docx'), f('gold.docx'), {}), 1);
  t.equal(await compareLineSpacing(f('spaced.docx'), f('gold.docx'), {}), 0, 'double spacing');
  t.equal(await containsPageBreak(f('break.docx'), null, {}), 1);
  t.equal(await containsPageBreak(f('same.docx'), null, {}), 0);
});

t.test('compare_pptx_files on LibreOffice pptx', { skip: sofficeOk ? false : 'soffice missing' }, async (t) => {
  const page = (name: string, text: string, y: string) => `<draw:page draw:name="${name}"><draw:frame svg:x="2cm" svg:y="${y}" svg:width="10cm" svg:height="3cm"><draw:text-box><text:p>${text}</text:p></draw:text-box></draw:frame></draw:page>`;
  const fodp = (name: string, pages: string[]) => {
    fs.writeFileSync(
      f(`${name}.fodp`),
      `<?xml version="1.0" encoding="UTF-8"?><office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.presentation"><office:body><office:presentation>${pages.join('')}</office:presentation></office:body></office:document>`,
    );
    soffice(f(`${name}.fodp`), 'pptx');
    return f(`${name}.pptx`);
  };
  const gold = fodp('deck', [page('p1', 'Hello slides', '2cm'), page('p2', 'Second', '6cm')]);
  const same = fodp('deck-same', [page('p1', 'Hello slides', '2cm'), page('p2', 'Second', '6cm')]);
  const text = fodp('deck-text', [page('p1', 'Hello slide', '2cm'), page('p2', 'Second', '6cm')]);
  const moved = fodp('deck-moved', [page('p1', 'Hello slides', '8cm'), page('p2', 'Second', '6cm')]);
  const short = fodp('deck-short', [page('p1', 'Hello slides', '2cm')]);
  t.equal(await comparePptxFiles(same, gold, {}), 1);
  t.equal(await comparePptxFiles(text, gold, {}), 0, 'different text');
  t.equal(await comparePptxFiles(moved, gold, {}), 0, 'moved shape');
  t.equal(await comparePptxFiles(moved, gold, { examine_shape: false }), 1, 'examine_shape false ignores position');
  t.equal(await comparePptxFiles(short, gold, {}), 0, 'missing slide');
  t.equal(await checkSlideOrientationPortrait(gold, null, {}), 0, 'landscape deck');
});

t.test('compare_pdfs', { skip: sofficeOk ? false : 'soffice missing' }, async (t) => {
  fs.writeFileSync(f('p1.txt'), 'The quick brown fox jumps over the lazy dog.\n');
  fs.writeFileSync(f('p2.txt'), 'Completely different words here, nothing shared.\n');
  soffice(f('p1.txt'), 'pdf');
  soffice(f('p2.txt'), 'pdf');
  t.equal(await comparePdfs(f('p1.pdf'), f('p1.pdf'), {}), 1);
  t.ok((await comparePdfs(f('p2.pdf'), f('p1.pdf'), {})) < 0.6, 'different text scores low');
});
