import { createBrowserRouter, type RouteObject } from 'react-router';
import { Layout } from './Layout';
import { SignInPage } from '@/features/auth/components/SignInPage';
import { ProjectsOverview } from '@/features/projects/components/ProjectsOverview';
import { SegmentsPage } from '@/features/segments/components/SegmentsPage';
import { SegmentDetailPage } from '@/features/segments/components/SegmentDetailPage';
import { SceneTypesPage } from '@/features/scene-types/components/SceneTypesPage';
import { SceneTypeSettingsPage } from '@/features/scene-types/components/SceneTypeSettingsPage';
import { ReviewQueuePage } from '@/features/review/components/ReviewQueuePage';
import { TokensPage } from '@/features/tokens/components/TokensPage';
import { QueuePage } from '@/features/operations/components/QueuePage';
import { ProjectBudgetPage } from '@/features/projects/components/ProjectBudgetPage';
import { NotFound } from './NotFound';

export const routes: RouteObject[] = [
  { path: '/sign-in', element: <SignInPage /> },
  {
    element: <Layout />,
    children: [
      { path: '/', element: <ProjectsOverview /> },
      { path: '/segments', element: <SegmentsPage /> },
      { path: '/segments/:segmentId', element: <SegmentDetailPage /> },
      { path: '/scene-types', element: <SceneTypesPage /> },
      { path: '/scene-types/:sceneTypeId', element: <SceneTypeSettingsPage /> },
      { path: '/review', element: <ReviewQueuePage /> },
      { path: '/tokens', element: <TokensPage /> },
      { path: '/queue', element: <QueuePage /> },
      { path: '/projects/:projectId/budget', element: <ProjectBudgetPage /> },
      { path: '*', element: <NotFound /> },
    ],
  },
];

export const createRouter = () => createBrowserRouter(routes);
