/**
 * One UI-TARS response -> the step's actions: pyautogui code per action, or a single control
 * word when the response holds a special action (the first one decides and the step's other
 * actions are dropped, as in ARPO's agent). call_user's word comes from the caller's tolerance.
 */
import { parseResponse, type CoordinateMode } from './parse-response.ts';
import { actionToCode, type ControlWord } from './to-pyautogui.ts';

export function responseToActions(
  text: string,
  coords: CoordinateMode,
  screen: { width: number; height: number },
  onCallUser: () => ControlWord,
): { actions: string[]; special: boolean } {
  const parsed = parseResponse(text, coords);
  const actions: string[] = [];
  for (const action of parsed.actions) {
    if (action.type === 'call_user') return { actions: [onCallUser()], special: true };
    const code = actionToCode(action, parsed.thought, screen.width, screen.height);
    if (code === 'DONE' || code === 'WAIT' || code === 'FAIL') return { actions: [code], special: true };
    actions.push(code);
  }
  return { actions, special: false };
}
