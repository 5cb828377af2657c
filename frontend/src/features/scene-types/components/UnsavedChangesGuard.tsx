import { useEffect } from 'react';
import { useBlocker } from 'react-router';

/** Warns before leaving with unsaved changes: in-app navigation and closing or reloading the tab. */
export function UnsavedChangesGuard({ dirty }: { dirty: boolean }) {
  const blocker = useBlocker(({ currentLocation, nextLocation }) => dirty && currentLocation.pathname !== nextLocation.pathname);

  useEffect(() => {
    if (!dirty) return;
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = '';
    };
    window.addEventListener('beforeunload', onBeforeUnload);
    return () => window.removeEventListener('beforeunload', onBeforeUnload);
  }, [dirty]);

  if (blocker.state !== 'blocked') return null;
  return (
    <div className="modal-backdrop">
      <div className="modal" role="alertdialog" aria-modal="true" aria-labelledby="leave-title" aria-describedby="leave-desc">
        <h2 id="leave-title">Leave without saving?</h2>
        <p id="leave-desc">This retry policy has unsaved changes. They will be lost.</p>
        <div className="form-actions">
          <button type="button" className="btn btn-primary" onClick={() => blocker.reset()} autoFocus>
            Stay and keep editing
          </button>
          <button type="button" className="btn btn-danger" onClick={() => blocker.proceed()}>
            Discard changes and leave
          </button>
        </div>
      </div>
    </div>
  );
}
