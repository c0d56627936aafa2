/** Every metric this project implements, by OSWorld's name (the coverage report reads this table). */
import type { Metric } from '../types.ts';
import {
  checkEnabledExperiments,
  checkFontSize,
  checkHistoryDeleted,
  isAddedToSteamCart,
  isCookieDeleted,
  isExpectedActiveTab,
  isExpectedBookmarks,
  isExpectedInstalledExtensions,
  isExpectedSearchQuery,
  isExpectedTabs,
  isExpectedUrlPatternMatch,
  isShortcutOnDesktop,
} from './chrome.ts';
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
import {
  checkBrightnessDecreaseAndStructureSim,
  checkContrastIncreaseAndStructureSim,
  checkFileExistsAndStructureSim,
  checkImageFileSize,
  checkImageMirror,
  checkImageSize,
  checkPaletteAndStructureSim,
  checkSaturationIncreaseAndStructureSim,
  checkStructureSim,
  checkStructureSimResized,
  compareImageList,
  compareImages,
} from './image.ts';
import { compareArchive } from './archive.ts';
import { compareAudios } from './audio.ts';
import { checkCsv, checkThunderbirdFilter, checkThunderbirdFolder } from './thunderbird.ts';
import {
  checkGlobalKeyPlayPause,
  checkOneInstanceWhenStartedFromFile,
  checkPlayAndExit,
  checkQtBgcone,
  checkQtMaxVolume,
  checkQtMinimalView,
  checkQtSliderColours,
  isVlcFullscreen,
  isVlcPlaying,
  isVlcRecordingsFolder,
} from './vlc.ts';
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
  is_cookie_deleted: isCookieDeleted,
  check_history_deleted: checkHistoryDeleted,
  check_enabled_experiments: checkEnabledExperiments,
  is_added_to_steam_cart: isAddedToSteamCart,
  is_expected_installed_extensions: isExpectedInstalledExtensions,
  is_shortcut_on_desktop: isShortcutOnDesktop,
  // text / JSON files
  check_list: checkList,
  check_json: checkJson,
  check_json_settings: checkJsonSettings,
  check_json_keybindings: checkJsonKeybindings,
  diff_text_file: diffTextFile,
  compare_config: compareConfig,
  is_extension_installed: isExtensionInstalled,
  // images
  compare_images: compareImages,
  compare_image_list: compareImageList,
  check_structure_sim: checkStructureSim,
  check_structure_sim_resized: checkStructureSimResized,
  check_brightness_decrease_and_structure_sim: checkBrightnessDecreaseAndStructureSim,
  check_saturation_increase_and_structure_sim: checkSaturationIncreaseAndStructureSim,
  check_contrast_increase_and_structure_sim: checkContrastIncreaseAndStructureSim,
  check_file_exists_and_structure_sim: checkFileExistsAndStructureSim,
  check_palette_and_structure_sim: checkPaletteAndStructureSim,
  check_image_size: checkImageSize,
  check_image_file_size: checkImageFileSize,
  check_image_mirror: checkImageMirror,
  // media
  compare_audios: compareAudios,
  compare_archive: compareArchive,
  is_vlc_playing: isVlcPlaying,
  is_vlc_recordings_folder: isVlcRecordingsFolder,
  is_vlc_fullscreen: isVlcFullscreen,
  check_qt_bgcone: checkQtBgcone,
  check_qt_max_volume: checkQtMaxVolume,
  check_qt_minimal_view: checkQtMinimalView,
  check_qt_slider_colours: checkQtSliderColours,
  check_global_key_play_pause: checkGlobalKeyPlayPause,
  check_one_instance_when_started_from_file: checkOneInstanceWhenStartedFromFile,
  check_play_and_exit: checkPlayAndExit,
  // thunderbird / csv
  check_thunderbird_filter: checkThunderbirdFilter,
  check_thunderbird_folder: checkThunderbirdFolder,
  check_csv: checkCsv,
  // app config files
  check_config_status: checkConfigStatus,
  check_thunderbird_prefs: checkThunderbirdPrefs,
};
