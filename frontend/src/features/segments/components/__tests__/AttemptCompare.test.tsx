import { fireEvent, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { AttemptCompare } from '../AttemptCompare';

describe('AttemptCompare', () => {
  let play: ReturnType<typeof vi.fn>;
  let pause: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    // jsdom has no media playback; record what the component asks of each video.
    play = vi.fn(function (this: HTMLMediaElement) {
      return Promise.resolve();
    });
    pause = vi.fn();
    vi.spyOn(HTMLMediaElement.prototype, 'play').mockImplementation(play as unknown as () => Promise<void>);
    vi.spyOn(HTMLMediaElement.prototype, 'pause').mockImplementation(pause as unknown as () => void);
  });

  it('plays, pauses and seeks both videos together', async () => {
    render(<AttemptCompare segmentId={45} attempts={fixtures.historyBestOfN().attempts} />);
    const left = screen.getByLabelText(/^Left:/) as HTMLVideoElement;
    const right = screen.getByLabelText(/^Right:/) as HTMLVideoElement;
    // Defaults: a failed attempt against the selected one.
    expect(left.getAttribute('src')).toContain('/attempts/1/media');
    expect(right.getAttribute('src')).toContain('/attempts/2/media');

    await userEvent.click(screen.getByRole('button', { name: 'Play both' }));
    expect(play).toHaveBeenCalledTimes(2);
    expect(play.mock.contexts).toEqual(expect.arrayContaining([left, right]));

    await userEvent.click(screen.getByRole('button', { name: 'Pause both' }));
    expect(pause.mock.contexts).toEqual(expect.arrayContaining([left, right]));

    Object.defineProperty(left, 'duration', { value: 3, configurable: true });
    fireEvent.loadedMetadata(left);
    fireEvent.change(screen.getByRole('slider', { name: 'Seek both videos' }), { target: { value: '1.5' } });
    expect(left.currentTime).toBe(1.5);
    expect(right.currentTime).toBe(1.5);
  });

  it('pulls the right video back in step when it drifts', () => {
    render(<AttemptCompare segmentId={45} attempts={fixtures.historyBestOfN().attempts} />);
    const left = screen.getByLabelText(/^Left:/) as HTMLVideoElement;
    const right = screen.getByLabelText(/^Right:/) as HTMLVideoElement;
    left.currentTime = 2;
    right.currentTime = 1.2;
    fireEvent.timeUpdate(left);
    expect(right.currentTime).toBe(2);
  });

  it('lets either side show any attempt with video', async () => {
    render(<AttemptCompare segmentId={45} attempts={fixtures.historyBestOfN().attempts} />);
    await userEvent.selectOptions(screen.getByRole('combobox', { name: 'Right attempt' }), '3');
    expect((screen.getByLabelText(/^Right:/) as HTMLVideoElement).getAttribute('src')).toContain('/attempts/3/media');
    // Attempt 4 has no video and is not offered.
    expect(screen.queryByRole('option', { name: /Attempt 4/ })).toBeNull();
  });
});
