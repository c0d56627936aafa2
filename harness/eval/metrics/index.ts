/** Every metric this project implements, by OSWorld's name (the coverage report reads this table). */
import type { Metric } from '../types.ts';
import { checkFontSize, isExpectedActiveTab, isExpectedBookmarks, isExpectedSearchQuery, isExpectedTabs, isExpectedUrlPatternMatch } from './chrome.ts';
import {
  checkItalicFontSize14,
  compareDocxFiles,
  compareDocxFilesAndIgnoreNewLines,
  compareDocxLines,
  compareDocxTables,
  compareFontNames,
  compareLineSpacing,
  compareSubscriptContains,
  containsPageBreak,
  evaluateStrikeThroughLastParagraph,
  hasPageNumbersInFooters,
  isFirstLineCentered,
} from './docs.ts';
import { checkDirectJsonObject, checkIncludeExclude, compareTextFile, exactMatch, isInList, matchInList } from './general.ts';
import { checkPdfPages, comparePdfs } from './pdf.ts';
import { checkSlideOrientationPortrait, checkTransition, comparePptxFiles } from './slides.ts';
import { compareCsv, compareTable } from './table.ts';
import {
  checkConfigStatus,
  checkJson,
  checkJsonKeybindings,
  checkJsonSettings,
  checkList,
  checkThunderbirdPrefs,
  compareConfig,
  diffTextFile,
  fileContains,
  isExtensionInstalled,
  literalMatch,
} from './text.ts';

export const METRICS: Record<string, Metric> = {
  // general
  exact_match: exactMatch,
  match_in_list: matchInList,
  is_in_list: isInList,
  check_include_exclude: checkIncludeExclude,
  check_direct_json_object: checkDirectJsonObject,
  compare_text_file: compareTextFile,
  literal_match: literalMatch,
  file_contains: fileContains,
  // spreadsheets
  compare_table: compareTable,
  compare_csv: compareCsv,
  // presentations
  compare_pptx_files: comparePptxFiles,
  check_slide_orientation_Portrait: checkSlideOrientationPortrait,
  check_transition: checkTransition,
  // documents
  compare_docx_files: compareDocxFiles,
  compare_docx_tables: compareDocxTables,
  compare_line_spacing: compareLineSpacing,
  compare_docx_lines: compareDocxLines,
  compare_docx_files_and_ignore_new_lines: compareDocxFilesAndIgnoreNewLines,
  contains_page_break: containsPageBreak,
  is_first_line_centered: isFirstLineCentered,
  compare_font_names: compareFontNames,
  compare_subscript_contains: compareSubscriptContains,
  evaluate_strike_through_last_paragraph: evaluateStrikeThroughLastParagraph,
  check_italic_font_size_14: checkItalicFontSize14,
  has_page_numbers_in_footers: hasPageNumbersInFooters,
  // pdf
  compare_pdfs: comparePdfs,
  check_pdf_pages: checkPdfPages,
  // browser
  is_expected_active_tab: isExpectedActiveTab,
  is_expected_url_pattern_match: isExpectedUrlPatternMatch,
  is_expected_tabs: isExpectedTabs,
  is_expected_bookmarks: isExpectedBookmarks,
  is_expected_search_query: isExpectedSearchQuery,
  check_font_size: checkFontSize,
  // text / JSON files
  check_list: checkList,
  check_json: checkJson,
  check_json_settings: checkJsonSettings,
  check_json_keybindings: checkJsonKeybindings,
  diff_text_file: diffTextFile,
  compare_config: compareConfig,
  is_extension_installed: isExtensionInstalled,
  // app config files
  check_config_status: checkConfigStatus,
  check_thunderbird_prefs: checkThunderbirdPrefs,
};
