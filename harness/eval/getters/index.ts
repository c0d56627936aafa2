/** Every getter this project implements, by OSWorld's name (the coverage report reads this table). */
import type { Getter } from '../types.ts';
import { accessibilityTree, defaultVideoPlayer, gimpConfigFile, listDirectory, vlcConfig, vlcPlayingInfo, vscodeConfig } from './apps.ts';
import {
  activeTabHtmlParse,
  activeTabInfo,
  activeTabUrlParse,
  activeUrlFromAccessTree,
  bookmarks,
  chromeFontSize,
  cookieData,
  dataDeleteAutomatically,
  defaultSearchEngine,
  enableDoNotTrack,
  enableEnhancedSafetyBrowsing,
  enabledExperiments,
  findInstalledExtensionName,
  findUnpackedExtensionPath,
  history,
  newStartupPage,
  openTabsInfo,
  pageInfo,
  profileName,
  shortcutsOnDesktop,
  urlDashPart,
} from './chrome.ts';
import { ruleRelativeTime, timeDiffRange } from './relative-time.ts';
import { rule, vmCommandError, vmCommandLine, vmScreenSize, vmTerminalOutput, vmWindowSize } from './env-state.ts';
import { audioInSlide, backgroundImageInSlide } from './slides.ts';
import { cacheFile, cloudFile, vmFile, vmWallpaper } from './files.ts';

export const GETTERS: Record<string, Getter> = {
  vm_file: vmFile,
  cloud_file: cloudFile,
  cache_file: cacheFile,
  vm_wallpaper: vmWallpaper,
  rule,
  rule_relativeTime: ruleRelativeTime,
  time_diff_range: timeDiffRange,
  vm_command_line: vmCommandLine,
  vm_command_error: vmCommandError,
  vm_terminal_output: vmTerminalOutput,
  vm_screen_size: vmScreenSize,
  vm_window_size: vmWindowSize,
  // chrome
  active_url_from_accessTree: activeUrlFromAccessTree,
  active_tab_info: activeTabInfo,
  active_tab_url_parse: activeTabUrlParse,
  url_dashPart: urlDashPart,
  open_tabs_info: openTabsInfo,
  bookmarks,
  profile_name: profileName,
  chrome_font_size: chromeFontSize,
  enable_do_not_track: enableDoNotTrack,
  enable_enhanced_safety_browsing: enableEnhancedSafetyBrowsing,
  new_startup_page: newStartupPage,
  data_delete_automacally: dataDeleteAutomatically,
  default_search_engine: defaultSearchEngine,
  active_tab_html_parse: activeTabHtmlParse,
  page_info: pageInfo,
  find_unpacked_extension_path: findUnpackedExtensionPath,
  find_installed_extension_name: findInstalledExtensionName,
  enabled_experiments: enabledExperiments,
  cookie_data: cookieData,
  history,
  shortcuts_on_desktop: shortcutsOnDesktop,
  // apps
  vlc_config: vlcConfig,
  vlc_playing_info: vlcPlayingInfo,
  gimp_config_file: gimpConfigFile,
  accessibility_tree: accessibilityTree,
  vscode_config: vscodeConfig,
  default_video_player: defaultVideoPlayer,
  list_directory: listDirectory,
  // impress
  audio_in_slide: audioInSlide,
  background_image_in_slide: backgroundImageInSlide,
};
