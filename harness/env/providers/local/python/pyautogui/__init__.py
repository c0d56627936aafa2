"""A pyautogui-compatible module for the local desktop envs (Debian has no python3-pyautogui).

Put this folder's parent on PYTHONPATH. Input goes through xdotool (XTEST, the same path real pyautogui
takes on X11); size/position come from xdotool; screenshots from scrot (+ PIL).
Covers the API that OSWorld agents generate: click, doubleClick, tripleClick, rightClick, middleClick,
moveTo, moveRel/move, dragTo, dragRel/drag, mouseDown, mouseUp, scroll, hscroll, vscroll, press, hotkey,
keyDown, keyUp, write/typewrite, size, position, onScreen, screenshot, FAILSAFE, PAUSE, sleep.
"""
import collections
import os
import shutil
import subprocess
import tempfile
import time

__version__ = "0.9.54-osworld-local"

PAUSE = 0.1  # seconds after each call, like pyautogui
FAILSAFE = True  # kept for compatibility; the fail-safe corner check is not enforced on a virtual display
FAILSAFE_POINTS = [(0, 0)]
MINIMUM_DURATION = 0.1
DARWIN_CATCH_UP_TIME = 0.01
LOG_SCREENSHOTS = False

Point = collections.namedtuple("Point", "x y")
Size = collections.namedtuple("Size", "width height")

LEFT, MIDDLE, RIGHT, PRIMARY, SECONDARY = "left", "middle", "right", "primary", "secondary"


class PyAutoGUIException(Exception):
    pass


class FailSafeException(PyAutoGUIException):
    pass


class ImageNotFoundException(PyAutoGUIException):
    pass


_XDOTOOL = shutil.which("xdotool") or "xdotool"

# pyautogui key name -> X keysym name (xdotool accepts keysym names)
_KEYS = {
    "enter": "Return", "return": "Return", "\n": "Return", "\r": "Return",
    "esc": "Escape", "escape": "Escape", "tab": "Tab", "\t": "Tab", "space": "space", " ": "space",
    "backspace": "BackSpace", "\b": "BackSpace", "delete": "Delete", "del": "Delete", "insert": "Insert",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "home": "Home", "end": "End", "pageup": "Prior", "pgup": "Prior", "pagedown": "Next", "pgdn": "Next",
    "ctrl": "Control_L", "ctrlleft": "Control_L", "ctrlright": "Control_R", "control": "Control_L",
    "shift": "Shift_L", "shiftleft": "Shift_L", "shiftright": "Shift_R",
    "alt": "Alt_L", "altleft": "Alt_L", "altright": "Alt_R", "option": "Alt_L", "optionleft": "Alt_L",
    "optionright": "Alt_R", "altgr": "ISO_Level3_Shift",
    "win": "Super_L", "winleft": "Super_L", "winright": "Super_R", "super": "Super_L", "command": "Super_L",
    "cmd": "Super_L", "meta": "Meta_L", "fn": "Super_L",
    "capslock": "Caps_Lock", "numlock": "Num_Lock", "scrolllock": "Scroll_Lock",
    "printscreen": "Print", "prtsc": "Print", "prtscr": "Print", "prntscrn": "Print", "print": "Print",
    "pause": "Pause", "break": "Break", "apps": "Menu", "menu": "Menu", "clear": "Clear", "help": "Help",
    "select": "Select", "execute": "Execute",
    "volumemute": "XF86AudioMute", "volumedown": "XF86AudioLowerVolume", "volumeup": "XF86AudioRaiseVolume",
    "playpause": "XF86AudioPlay", "stop": "XF86AudioStop", "nexttrack": "XF86AudioNext",
    "prevtrack": "XF86AudioPrev", "browserback": "XF86Back", "browserforward": "XF86Forward",
    "browserrefresh": "XF86Reload", "browserhome": "XF86HomePage", "browsersearch": "XF86Search",
    "browserfavorites": "XF86Favorites", "browserstop": "XF86Stop", "launchmail": "XF86Mail",
    "add": "KP_Add", "subtract": "KP_Subtract", "multiply": "KP_Multiply", "divide": "KP_Divide",
    "decimal": "KP_Decimal", "separator": "KP_Separator",
    "!": "exclam", '"': "quotedbl", "#": "numbersign", "$": "dollar", "%": "percent", "&": "ampersand",
    "'": "apostrophe", "(": "parenleft", ")": "parenright", "*": "asterisk", "+": "plus", ",": "comma",
    "-": "minus", ".": "period", "/": "slash", ":": "colon", ";": "semicolon", "<": "less", "=": "equal",
    ">": "greater", "?": "question", "@": "at", "[": "bracketleft", "\\": "backslash", "]": "bracketright",
    "^": "asciicircum", "_": "underscore", "`": "grave", "{": "braceleft", "|": "bar", "}": "braceright",
    "~": "asciitilde",
}
for _i in range(1, 25):
    _KEYS["f%d" % _i] = "F%d" % _i
for _i in range(10):
    _KEYS["num%d" % _i] = "KP_%d" % _i

KEYBOARD_KEYS = sorted(set(list(_KEYS.keys()) + [chr(c) for c in range(ord("a"), ord("z") + 1)]
                           + [chr(c) for c in range(ord("0"), ord("9") + 1)]))
KEY_NAMES = KEYBOARD_KEYS

_BUTTONS = {"left": 1, "middle": 2, "right": 3, "primary": 1, "secondary": 3, 1: 1, 2: 2, 3: 3,
            "1": 1, "2": 2, "3": 3, 4: 4, 5: 5, 6: 6, 7: 7}


def _keysym(key):
    if not isinstance(key, str):
        raise PyAutoGUIException("key must be a string, got %r" % (key,))
    if key in _KEYS:
        return _KEYS[key]
    low = key.lower()
    if low in _KEYS:
        return _KEYS[low]
    if len(key) == 1:
        if key.isascii() and key.isalnum():
            return key
        return "U%04X" % ord(key)  # xdotool maps unicode keysyms
    return key  # assume an X keysym name (e.g. 'Return', 'KP_Enter')


def isValidKey(key):
    return isinstance(key, str) and (key in _KEYS or key.lower() in _KEYS or len(key) == 1)


def _xdo(*args, pause=True):
    r = subprocess.run([_XDOTOOL] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise PyAutoGUIException("xdotool %s failed: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r.stdout


def _autopause(do=True):
    if do and PAUSE:
        time.sleep(PAUSE)


def _button(button):
    if button not in _BUTTONS:
        raise PyAutoGUIException("button must be one of left/middle/right/primary/secondary, got %r" % (button,))
    return _BUTTONS[button]


def size():
    out = _xdo("getdisplaygeometry", pause=False).split()
    return Size(int(out[0]), int(out[1]))


resolution = size


def position(x=None, y=None):
    out = _xdo("getmouselocation", "--shell", pause=False)
    d = dict(line.split("=", 1) for line in out.split() if "=" in line)
    px, py = int(d.get("X", 0)), int(d.get("Y", 0))
    return Point(int(x) if x is not None else px, int(y) if y is not None else py)


def onScreen(x, y=None):
    if y is None and isinstance(x, (tuple, list)):
        x, y = x
    w, h = size()
    return 0 <= int(x) < w and 0 <= int(y) < h


def _unpack(x, y):
    """pyautogui accepts click((x, y)) and click(x=None) (current position)."""
    if isinstance(x, (tuple, list)) and y is None:
        x, y = x[0], x[1]
    if isinstance(x, str):  # an image file to locate: not supported
        raise ImageNotFoundException("locating images on screen is not supported: %r" % x)
    if x is None and y is None:
        return None
    cur = position()
    return (int(round(float(x))) if x is not None else cur.x, int(round(float(y))) if y is not None else cur.y)


def _move(xy, duration=0.0):
    if xy is None:
        return
    x, y = xy
    if duration and duration > MINIMUM_DURATION:
        cur = position()
        steps = max(2, min(60, int(duration * 60)))
        for i in range(1, steps + 1):
            _xdo("mousemove", int(cur.x + (x - cur.x) * i / steps), int(cur.y + (y - cur.y) * i / steps))
            time.sleep(duration / steps)
    else:
        _xdo("mousemove", x, y)


def moveTo(x=None, y=None, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    _move(_unpack(x, y), duration)
    _autopause(_pause)


def moveRel(xOffset=None, yOffset=None, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    if isinstance(xOffset, (tuple, list)) and yOffset is None:
        xOffset, yOffset = xOffset
    cur = position()
    _move((cur.x + int(xOffset or 0), cur.y + int(yOffset or 0)), duration)
    _autopause(_pause)


move = moveRel


def mouseDown(x=None, y=None, button=PRIMARY, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    b = _button(button)
    _move(_unpack(x, y), duration)
    _xdo("mousedown", b)
    _autopause(_pause)


def mouseUp(x=None, y=None, button=PRIMARY, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    b = _button(button)
    _move(_unpack(x, y), duration)
    _xdo("mouseup", b)
    _autopause(_pause)


def click(x=None, y=None, clicks=1, interval=0.0, button=PRIMARY, duration=0.0, tween=None,
          logScreenshot=False, _pause=True, **kw):
    b = _button(button)
    _move(_unpack(x, y), duration)
    clicks = int(clicks)
    if clicks <= 0:
        _autopause(_pause)
        return
    # xdotool --repeat with a short delay keeps the clicks within the double-click time
    delay = int(float(interval) * 1000) if interval else 40
    _xdo("click", "--repeat", clicks, "--delay", delay, b)
    _autopause(_pause)


def leftClick(x=None, y=None, interval=0.0, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    click(x, y, 1, interval, LEFT, duration, tween, logScreenshot, _pause)


def rightClick(x=None, y=None, interval=0.0, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    click(x, y, 1, interval, RIGHT, duration, tween, logScreenshot, _pause)


def middleClick(x=None, y=None, interval=0.0, duration=0.0, tween=None, logScreenshot=False, _pause=True, **kw):
    click(x, y, 1, interval, MIDDLE, duration, tween, logScreenshot, _pause)


def doubleClick(x=None, y=None, interval=0.0, button=LEFT, duration=0.0, tween=None, logScreenshot=False,
                _pause=True, **kw):
    click(x, y, 2, interval, button, duration, tween, logScreenshot, _pause)


def tripleClick(x=None, y=None, interval=0.0, button=LEFT, duration=0.0, tween=None, logScreenshot=False,
                _pause=True, **kw):
    click(x, y, 3, interval, button, duration, tween, logScreenshot, _pause)


def dragTo(x=None, y=None, duration=0.0, tween=None, button=PRIMARY, logScreenshot=False, _pause=True,
           mouseDownUp=True, **kw):
    b = _button(button)
    target = _unpack(x, y)
    if target is None:
        return
    cur = position()
    if mouseDownUp:
        _xdo("mousedown", b)
    steps = max(5, int((duration or 0) * 30))
    for i in range(1, steps + 1):
        _xdo("mousemove", int(cur.x + (target[0] - cur.x) * i / steps),
             int(cur.y + (target[1] - cur.y) * i / steps))
        time.sleep(max(0.01, (duration or 0) / steps))
    if mouseDownUp:
        _xdo("mouseup", b)
    _autopause(_pause)


def dragRel(xOffset=0, yOffset=0, duration=0.0, tween=None, button=PRIMARY, logScreenshot=False, _pause=True,
            mouseDownUp=True, **kw):
    if isinstance(xOffset, (tuple, list)):
        xOffset, yOffset = xOffset
    cur = position()
    dragTo(cur.x + int(xOffset or 0), cur.y + int(yOffset or 0), duration, tween, button, logScreenshot, _pause,
           mouseDownUp)


drag = dragRel


def _scroll_buttons(clicks, pos_button, neg_button, x, y):
    _move(_unpack(x, y))
    clicks = int(clicks)
    if clicks == 0:
        return
    b = pos_button if clicks > 0 else neg_button
    _xdo("click", "--repeat", abs(clicks), "--delay", 10, b)


def scroll(clicks, x=None, y=None, logScreenshot=False, _pause=True, **kw):
    """Positive clicks scroll up (X button 4), negative down (button 5), like pyautogui on X11."""
    _scroll_buttons(clicks, 4, 5, x, y)
    _autopause(_pause)


vscroll = scroll


def hscroll(clicks, x=None, y=None, logScreenshot=False, _pause=True, **kw):
    """Positive clicks scroll right (X button 7), negative left (button 6), like pyautogui on X11."""
    _scroll_buttons(clicks, 7, 6, x, y)
    _autopause(_pause)


def keyDown(key, logScreenshot=False, _pause=True, **kw):
    _xdo("keydown", _keysym(key))
    _autopause(_pause)


def keyUp(key, logScreenshot=False, _pause=True, **kw):
    _xdo("keyup", _keysym(key))
    _autopause(_pause)


def press(keys, presses=1, interval=0.0, logScreenshot=False, _pause=True, **kw):
    if isinstance(keys, str):
        keys = [keys]
    keys = list(keys)
    for _ in range(int(presses)):
        for k in keys:
            _xdo("key", "--clearmodifiers", _keysym(k))
            if interval:
                time.sleep(float(interval))
    _autopause(_pause)


def hotkey(*args, logScreenshot=False, interval=0.0, _pause=True, **kw):
    keys = []
    for a in args:  # hotkey(['ctrl', 'c']) is accepted too
        keys.extend(a if isinstance(a, (list, tuple)) else [a])
    if not keys:
        return
    syms = [_keysym(k) for k in keys]
    if interval:
        for s in syms:
            _xdo("keydown", s)
            time.sleep(float(interval))
        for s in reversed(syms):
            _xdo("keyup", s)
            time.sleep(float(interval))
    else:
        _xdo("key", "--clearmodifiers", "+".join(syms))
    _autopause(_pause)


shortcut = hotkey


def _type_chunk(text, delay_ms):
    if text:
        _xdo("type", "--clearmodifiers", "--delay", int(delay_ms), "--", text)


def write(message, interval=0.0, logScreenshot=False, _pause=True, **kw):
    """Types text. A list of key names (pyautogui.write(['a', 'enter'])) is pressed key by key.
    Newlines become Return and tabs Tab. Non-ASCII text is typed with a 40 ms delay (xdotool remaps a spare
    keycode per character, which drops characters at lower delays)."""
    if isinstance(message, (list, tuple)):
        for k in message:
            press(k, _pause=False)
            if interval:
                time.sleep(float(interval))
        _autopause(_pause)
        return
    message = str(message)
    ascii_delay = max(int(float(interval) * 1000), 4)
    run, run_ascii = "", True
    def flush():
        if run:
            _type_chunk(run, ascii_delay if run_ascii else max(ascii_delay, 40))
    for ch in message:
        if ch in "\n\r\t":
            flush()
            run = ""
            if ch == "\r":
                continue
            _xdo("key", "--clearmodifiers", "Return" if ch == "\n" else "Tab")
            continue
        is_ascii = ch.isascii()
        if run and is_ascii != run_ascii:
            flush()
            run = ""
        run_ascii = is_ascii
        run += ch
    flush()
    _autopause(_pause)


typewrite = write


def screenshot(imageFilename=None, region=None, **kw):
    from PIL import Image
    fd, tmp = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        subprocess.run(["scrot", "-o", "-z", tmp], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        im = Image.open(tmp)
        im.load()
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if region is not None:
        x, y, w, h = [int(v) for v in region]
        im = im.crop((x, y, x + w, y + h))
    if imageFilename:
        im.save(imageFilename)
    return im


def pixel(x, y):
    return screenshot().convert("RGB").getpixel((int(x), int(y)))


def pixelMatchesColor(x, y, expectedRGBColor, tolerance=0):
    px = pixel(x, y)
    return all(abs(a - b) <= tolerance for a, b in zip(px, expectedRGBColor))


def _unsupported(name):
    def f(*a, **k):
        raise ImageNotFoundException("%s is not supported by the local pyautogui module" % name)
    f.__name__ = name
    return f


locateOnScreen = _unsupported("locateOnScreen")
locateCenterOnScreen = _unsupported("locateCenterOnScreen")
locateAllOnScreen = _unsupported("locateAllOnScreen")
locate = _unsupported("locate")


def sleep(seconds):
    time.sleep(seconds)


def countdown(seconds):
    for i in range(int(seconds), 0, -1):
        print(str(i), end=" ", flush=True)
        time.sleep(1)
    print()


def alert(text="", title="", button="OK", **kw):
    return button


def confirm(text="", title="", buttons=("OK", "Cancel"), **kw):
    return buttons[0]


def prompt(text="", title="", default="", **kw):
    return default


def password(text="", title="", default="", mask="*", **kw):
    return default


def linear(n):
    return n


easeInQuad = easeOutQuad = easeInOutQuad = linear
