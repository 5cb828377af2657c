import type { ReactNode } from 'react';
import { ApiError } from '@/api/client';

export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  const msg = error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
  return (
    <div className="notice notice-error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {msg}
    </div>
  );
}

export function FieldError({ id, message }: { id: string; message?: string | null }) {
  // Always rendered (empty when fine) so a message appearing does not push the form around.
  return (
    <div id={id} className="field-error" role={message ? 'alert' : undefined}>
      {message ?? ''}
    </div>
  );
}

export function SkeletonBlock({ height, width }: { height: number | string; width?: number | string }) {
  return <div className="skeleton" style={{ height, width: width ?? '100%' }} aria-hidden="true" />;
}

export function Loading({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div role="status" aria-busy="true" aria-label={label}>
      {children}
    </div>
  );
}

export function ReadOnlyNotice({ children }: { children: ReactNode }) {
  return (
    <div className="notice notice-info" role="note">
      {children}
    </div>
  );
}
