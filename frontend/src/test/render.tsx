import type { ReactElement } from 'react';
import { render } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider, createMemoryRouter } from 'react-router';
import type { Role } from '@/api/types';
import { AuthProvider } from '@/features/auth/hooks/auth-context';
import { meKey } from '@/features/auth/api/get-me';

interface Options {
  role?: Role;
  /** The route pattern the element is mounted at, e.g. `/segments/:segmentId`. */
  path?: string;
  /** The URL to start at. */
  url?: string;
  extraRoutes?: { path: string; element: ReactElement }[];
}

/** Render as a signed-in user of `role`, inside a data router (so blockers work). */
export function renderWithApp(ui: ReactElement, { role = 'admin', path = '/', url = path, extraRoutes = [] }: Options = {}) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity }, mutations: { retry: false } } });
  qc.setQueryData(meKey, { name: `test ${role}`, role });
  const router = createMemoryRouter(
    [
      { path, element: ui },
      { path: '/sign-in', element: <div>sign-in page</div> },
      ...extraRoutes,
    ],
    { initialEntries: [url] },
  );
  const utils = render(
    <QueryClientProvider client={qc}>
      <AuthProvider>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>,
  );
  return { ...utils, qc, router };
}
