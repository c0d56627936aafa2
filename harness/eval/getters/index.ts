/** Every getter this project implements, by OSWorld's name (the coverage report reads this table). */
import type { Getter } from '../types.ts';
import { rule, vmCommandError, vmCommandLine, vmScreenSize, vmTerminalOutput, vmWindowSize } from './env-state.ts';
import { cacheFile, cloudFile, vmFile, vmWallpaper } from './files.ts';

export const GETTERS: Record<string, Getter> = {
  vm_file: vmFile,
  cloud_file: cloudFile,
  cache_file: cacheFile,
  vm_wallpaper: vmWallpaper,
  rule,
  vm_command_line: vmCommandLine,
  vm_command_error: vmCommandError,
  vm_terminal_output: vmTerminalOutput,
  vm_screen_size: vmScreenSize,
  vm_window_size: vmWindowSize,
};
