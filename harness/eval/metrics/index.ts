/** Every metric this project implements, by OSWorld's name (the coverage report reads this table). */
import type { Metric } from '../types.ts';
import { checkDirectJsonObject, checkIncludeExclude, compareTextFile, exactMatch, isInList, matchInList } from './general.ts';

export const METRICS: Record<string, Metric> = {
  exact_match: exactMatch,
  match_in_list: matchInList,
  is_in_list: isInList,
  check_include_exclude: checkIncludeExclude,
  check_direct_json_object: checkDirectJsonObject,
  compare_text_file: compareTextFile,
};
