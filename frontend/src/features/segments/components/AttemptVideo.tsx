import { mediaUrl } from './media';

export function AttemptVideo({ segmentId, attemptNumber, autoPlay }: { segmentId: number; attemptNumber: number; autoPlay?: boolean }) {
  return (
    <div className="video-box">
      <video
        src={mediaUrl(segmentId, attemptNumber)}
        controls
        preload="metadata"
        autoPlay={autoPlay}
        muted
        playsInline
        aria-label={`Video of attempt ${attemptNumber}`}
      />
    </div>
  );
}
