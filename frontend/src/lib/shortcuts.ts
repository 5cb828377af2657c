import { useEffect, useRef } from 'react';

export interface Shortcut {
  /** `KeyboardEvent.key`: `j`, `?`, `/`, `A` (Shift+a), `Escape`. */
  key: string;
  /** What people read in the help. */
  label: string;
  description: string;
  run: () => void;
  /** Hidden from the help and ignored (e.g. an action the role may not take). */
  disabled?: boolean;
}

function typing(t: EventTarget | null): boolean {
  if (!(t instanceof HTMLElement)) return false;
  const tag = t.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || t.isContentEditable;
}

/**
 * Single-key shortcuts for a page. Keys typed into a field stay in the field (only Escape
 * reaches the page), and modifier chords other than Shift are left to the browser.
 */
export function useShortcuts(shortcuts: Shortcut[]): void {
  const ref = useRef(shortcuts);
  ref.current = shortcuts;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
      if (typing(e.target) && e.key !== 'Escape') return;
      const s = ref.current.find((x) => x.key === e.key && !x.disabled);
      if (!s) return;
      e.preventDefault();
      s.run();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);
}
