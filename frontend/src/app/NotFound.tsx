import { Link } from 'react-router';

export function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is nothing here. <Link to="/">Back to projects</Link>.
      </p>
    </section>
  );
}
