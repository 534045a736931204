// Arrow-key (remote control) navigation: from the focused element, move to the nearest
// focusable one in the pressed direction, judged by on-screen geometry, so grids, lists and
// button rows all work without per-view wiring. Lists scroll the focused row into view.

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), [tabindex="0"]';

function visible(el) {
  if (!(el instanceof HTMLElement)) return false;
  if (el.closest('[hidden], [inert]')) return false;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  const style = getComputedStyle(el);
  return style.visibility !== 'hidden' && style.display !== 'none';
}

/** Focusable elements inside `scope` that a person could see (scrolled-away rows included). */
export function focusables(scope) {
  return [...scope.querySelectorAll(FOCUSABLE)].filter(visible);
}

/**
 * The best next element in a direction: it must lie beyond the current one on that axis; the
 * score is the distance along the axis plus a heavier penalty for sideways offset, and a
 * candidate overlapping the current one sideways (same row / same column) wins over one that
 * does not.
 */
export function pickNext(from, candidates, direction) {
  const a = from.getBoundingClientRect();
  const ac = { x: a.left + a.width / 2, y: a.top + a.height / 2 };
  let best = null;
  let bestScore = Infinity;
  for (const el of candidates) {
    if (el === from) continue;
    const b = el.getBoundingClientRect();
    const bc = { x: b.left + b.width / 2, y: b.top + b.height / 2 };
    let primary;
    let overlap;
    let side;
    switch (direction) {
      case 'up':
        primary = a.top - b.bottom;
        if (bc.y >= ac.y - 1) continue;
        overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        side = Math.abs(bc.x - ac.x);
        break;
      case 'down':
        primary = b.top - a.bottom;
        if (bc.y <= ac.y + 1) continue;
        overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        side = Math.abs(bc.x - ac.x);
        break;
      case 'left':
        primary = a.left - b.right;
        if (bc.x >= ac.x - 1) continue;
        overlap = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        side = Math.abs(bc.y - ac.y);
        break;
      default:
        primary = b.left - a.right;
        if (bc.x <= ac.x + 1) continue;
        overlap = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        side = Math.abs(bc.y - ac.y);
    }
    const score = Math.max(0, primary) + (overlap > 0 ? side * 0.1 : 1000 + side * 2);
    if (score < bestScore) {
      bestScore = score;
      best = el;
    }
  }
  return best;
}

/** Moves focus within `scope`; returns true when it moved. */
export function moveFocus(scope, direction) {
  const list = focusables(scope);
  if (list.length === 0) return false;
  const current = document.activeElement;
  if (!current || current === document.body || !scope.contains(current) || !visible(current)) {
    focusElement(list[0]);
    return true;
  }
  const next = pickNext(current, list, direction);
  if (!next) return false;
  focusElement(next);
  return true;
}

export function focusElement(el) {
  if (!el) return;
  el.focus({ preventScroll: true });
  el.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}
