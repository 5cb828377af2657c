import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider } from 'react-router';
import { adoptTokenFromHash } from '@/lib/token';
import { AuthProvider } from '@/features/auth/hooks/auth-context';
import { createQueryClient } from './app/query-client';
import { createRouter } from './app/router';
import './styles/index.css';

// `retake demo` prints a link with `#token=...`: keep it and strip it before anything renders.
adoptTokenFromHash();

const queryClient = createQueryClient();
const router = createRouter();

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <AuthProvider>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>
  </StrictMode>,
);
