import { useEffect, useRef, useState } from 'react';
import type { AttemptView } from '@/api/types';
import { fmtScore } from '@/lib/format';
import { mediaUrl } from './media';

interface Props {
  segmentId: number;
  attempts: AttemptView[];
}

function pickDefaults(withMedia: AttemptView[]): [number, number] {
  const selected = withMedia.find((a) => a.is_selected) ?? withMedia.at(-1);
  const other = withMedia.find((a) => a !== selected && a.status === 'failed') ?? withMedia.find((a) => a !== selected);
  const first = other ?? withMedia[0];
  return [first?.attempt_number ?? 0, (selected ?? first)?.attempt_number ?? 0];
}

/**
 * Two attempts side by side with one set of controls: play, pause and seek move both videos, and
 * the right one is nudged back in step whenever it drifts.
 */
export function AttemptCompare({ segmentId, attempts }: Props) {
  const withMedia = attempts.filter((a) => a.has_media);
  const [defA, defB] = pickDefaults(withMedia);
  const [left, setLeft] = useState(defA);
  const [right, setRight] = useState(defB);
  const a = useRef<HTMLVideoElement>(null);
  const b = useRef<HTMLVideoElement>(null);
  const [playing, setPlaying] = useState(false);
  const [time, setTime] = useState(0);
  const [duration, setDuration] = useState(0);

  useEffect(() => {
    setPlaying(false);
    setTime(0);
  }, [left, right]);

  if (withMedia.length < 2) {
    return <p className="muted small">Side-by-side comparison needs two attempts with video.</p>;
  }

  const both = () => [a.current, b.current].filter((v): v is HTMLVideoElement => v !== null);
  const toggle = () => {
    if (playing) {
      both().forEach((v) => v.pause());
      setPlaying(false);
    } else {
      const t = a.current?.currentTime ?? 0;
      both().forEach((v) => {
        v.currentTime = t;
        void v.play().catch(() => setPlaying(false));
      });
      setPlaying(true);
    }
  };
  const seek = (t: number) => {
    both().forEach((v) => {
      v.currentTime = t;
    });
    setTime(t);
  };
  const onTime = () => {
    const va = a.current;
    const vb = b.current;
    if (!va) return;
    setTime(va.currentTime);
    if (vb && Math.abs(vb.currentTime - va.currentTime) > 0.15) vb.currentTime = va.currentTime;
  };
  const label = (n: number) => {
    const at = withMedia.find((x) => x.attempt_number === n);
    return at ? `Attempt ${n} · ${at.status} · overall ${fmtScore(at.overall)}` : `Attempt ${n}`;
  };

  return (
    <div className="compare" role="group" aria-label="Compare two attempts">
      <div className="compare-pickers">
        <label>
          Left
          <select value={left} onChange={(e) => setLeft(Number(e.target.value))} aria-label="Left attempt">
            {withMedia.map((x) => (
              <option key={x.attempt_number} value={x.attempt_number}>
                {label(x.attempt_number)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Right
          <select value={right} onChange={(e) => setRight(Number(e.target.value))} aria-label="Right attempt">
            {withMedia.map((x) => (
              <option key={x.attempt_number} value={x.attempt_number}>
                {label(x.attempt_number)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="compare-videos">
        <figure className="video-box">
          <video
            ref={a}
            key={`a-${left}`}
            src={mediaUrl(segmentId, left)}
            preload="auto"
            muted
            playsInline
            onTimeUpdate={onTime}
            onLoadedMetadata={(e) => setDuration(e.currentTarget.duration || 0)}
            onEnded={() => setPlaying(false)}
            aria-label={`Left: ${label(left)}`}
          />
          <figcaption>{label(left)}</figcaption>
        </figure>
        <figure className="video-box">
          <video ref={b} key={`b-${right}`} src={mediaUrl(segmentId, right)} preload="auto" muted playsInline onEnded={() => setPlaying(false)} aria-label={`Right: ${label(right)}`} />
          <figcaption>{label(right)}</figcaption>
        </figure>
      </div>
      <div className="compare-controls">
        <button type="button" className="btn btn-sm" onClick={toggle} aria-label={playing ? 'Pause both' : 'Play both'}>
          {playing ? '❚❚ Pause' : '▶ Play both'}
        </button>
        <input
          type="range"
          min={0}
          max={duration || 0}
          step={0.01}
          value={Math.min(time, duration || 0)}
          onChange={(e) => seek(e.target.valueAsNumber)}
          aria-label="Seek both videos"
          className="compare-seek"
        />
        <span className="mono small compare-time">
          {time.toFixed(2)} / {duration.toFixed(2)} s
        </span>
      </div>
    </div>
  );
}
