import { useEffect, useRef } from 'react';
import type { Shortcut } from '@/lib/shortcuts';

/** The list of a page's keyboard shortcuts, shown with `?`; Escape or the button closes it. */
export function ShortcutsHelp({ shortcuts, onClose }: { shortcuts: Shortcut[]; onClose: () => void }) {
  const closeRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    closeRef.current?.focus();
    return () => previous?.focus?.();
  }, []);
  return (
    <div className="shortcuts-backdrop">
      <div className="card shortcuts" role="dialog" aria-modal="true" aria-labelledby="shortcuts-title">
        <h2 id="shortcuts-title" className="section-title">
          Keyboard shortcuts
        </h2>
        <dl className="shortcut-list">
          {shortcuts
            .filter((s) => !s.disabled)
            .map((s) => (
              <div key={s.key}>
                <dt>
                  <kbd>{s.label}</kbd>
                </dt>
                <dd>{s.description}</dd>
              </div>
            ))}
        </dl>
        <p className="muted small">Shortcuts do nothing while you type in a field.</p>
        <button ref={closeRef} type="button" className="btn btn-sm" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}
