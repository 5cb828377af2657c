import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider } from 'react-router';
import { takeTokenFromHash } from '@/lib/token';
import { AuthProvider } from '@/features/auth/hooks/auth-context';
import { createQueryClient } from './app/query-client';
import { createRouter } from './app/router';
import './styles/index.css';

// `retake demo` prints a link with `#token=...`: strip it before anything renders, then sign in
// with it (the browser keeps only the session cookie).
const linkToken = takeTokenFromHash();

const queryClient = createQueryClient();
const router = createRouter();

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <AuthProvider initialToken={linkToken}>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>
  </StrictMode>,
);
