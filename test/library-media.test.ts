// The media pipeline: pure decisions on plain objects, then real ffmpeg on real generated files
// (in a temp dir removed at the end). No wall-clock thresholds: deadlines are tested by making
// them impossible to meet, and results by what the files contain.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../common/log.js';
import { mediaConfig, type MediaConfig } from '../library/media/config.js';
import { MediaError } from '../library/media/errors.js';
import { runFfmpeg, inputUrl } from '../library/media/ffmpeg.js';
import type { ProbeStream } from '../library/media/ffprobe.js';
import { buildPackageCommand } from '../library/media/filters.js';
import { computeGainDb, loudnessForManifest, measureR128, measureSongLoudness, parseLoudnormOutput } from '../library/media/loudness.js';
import { boundarySkewS, packageHls, type PackageResult } from '../library/media/package.js';
import { classifyAudioStream, fitVideoSize, keyframeGridProblem, planIngest, type IngestPlan } from '../library/media/plan.js';
import { mergeLastSegment, parseMediaPlaylist, writeMasterPlaylist, writeMediaPlaylist } from '../library/media/playlist.js';
import { probeMedia, type ProbeResult } from '../library/media/probe.js';
import { sniffBytes } from '../library/media/sniff.js';
import { chooseTitleText, makeDemoSong, DEJAVU_FONT } from '../library/media/demo.js';
import { dominantFrequencyHz, dominantFrequencyOfPcm } from '../library/media/tones.js';

const VOCAL_HZ = 440;
const BACKING_HZ = 1000;
/** Integrated loudness of the packaged vocal must land this close to the target. */
const LOUDNESS_TOLERANCE_LU = 1.5;
/** A tone is "the" tone when the dominant frequency is this close (FFT bins are < 1 Hz). */
const TONE_TOLERANCE_HZ = 5;

// ---- helpers --------------------------------------------------------------------------------

function stream(partial: Partial<ProbeStream> & Pick<ProbeStream, 'index' | 'type' | 'codec'>): ProbeStream {
  return { isAttachedPicture: false, isKaraoke: false, ...partial };
}

function h264(over: Partial<ProbeStream> = {}): ProbeStream {
  return stream({ index: 0, type: 'video', codec: 'h264', profile: 'High', width: 1920, height: 1080, pixFmt: 'yuv420p', fieldOrder: 'progressive', frameRate: 25, durationS: 200, ...over });
}

function aac(index: number, over: Partial<ProbeStream> = {}): ProbeStream {
  return stream({ index, type: 'audio', codec: 'aac', channels: 2, sampleRateHz: 48000, ...over });
}

function fakeProbe(video: ProbeStream, audio: ProbeStream[]): ProbeResult {
  return {
    file: '/nonexistent/song.mp4',
    sizeBytes: 1,
    format: { name: 'mov,mp4,m4a,3gp,3g2,mj2', durationS: 200, startS: 0 },
    durationS: 200,
    streams: [video, ...audio],
    video,
    audio,
    warnings: [],
  };
}

function expectError(result: unknown, code: string, messagePattern?: RegExp): MediaError {
  assert.ok(result instanceof MediaError, `expected MediaError ${code}, got ${JSON.stringify(result)}`);
  assert.equal(result.code, code, result.message);
  assert.ok(!/[\r\n]/.test(result.message), 'message must be one line');
  if (messagePattern) assert.match(result.message, messagePattern);
  return result;
}

function expectPlan(result: IngestPlan | MediaError): IngestPlan {
  if (result instanceof MediaError) assert.fail(`expected a plan, got ${result.code}: ${result.message}`);
  return result;
}

async function expectReject(promise: Promise<unknown>, code: string, messagePattern?: RegExp): Promise<MediaError> {
  try {
    await promise;
  } catch (err) {
    return expectError(err, code, messagePattern);
  }
  assert.fail(`expected a ${code} refusal`);
}

/** ffmpeg children of this test process that are still running (not zombies). */
async function liveFfmpegChildren(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const statLine = await readFile(`/proc/${entry}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(statLine);
      if (m && m[1] === 'ffmpeg' && m[2] !== 'Z' && Number(m[3]) === process.pid) pids.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return pids;
}

// ---- pure: planning ---------------------------------------------------------------------------

describe('planIngest', () => {
  test('explicit --vocal-track/--backing-track are audio ordinals, not stream indexes', () => {
    const probe = fakeProbe(h264(), [aac(1), aac(2), aac(3)]);
    const plan = expectPlan(planIngest(probe, { vocalTrack: 2, backingTrack: 0 }));
    assert.equal(plan.audioLayout, 'two-streams');
    assert.equal(plan.audioMapping, 'explicit');
    assert.deepEqual([plan.vocal.audioOrdinal, plan.vocal.streamIndex], [2, 3]);
    assert.deepEqual([plan.backing.audioOrdinal, plan.backing.streamIndex], [0, 1]);
  });

  test('one of the two tracks given: the other stream takes the other role', () => {
    const plan = expectPlan(planIngest(fakeProbe(h264(), [aac(1), aac(2)]), { backingTrack: 0 }));
    assert.equal(plan.vocal.audioOrdinal, 1);
    assert.equal(plan.backing.audioOrdinal, 0);
  });

  test('Chinese titles decide the roles, whatever the stream order', () => {
    const probe = fakeProbe(h264(), [aac(1, { title: '伴奏' }), aac(2, { title: '原唱' })]);
    const plan = expectPlan(planIngest(probe));
    assert.equal(plan.audioMapping, 'titles');
    assert.equal(plan.vocal.audioOrdinal, 1);
    assert.equal(plan.backing.audioOrdinal, 0);
  });

  test('English titles and MP4 handler names decide the roles', () => {
    const byTitle = expectPlan(planIngest(fakeProbe(h264(), [aac(1, { title: 'Original Vocals' }), aac(2, { title: 'Karaoke (instrumental)' })])));
    assert.equal(byTitle.vocal.audioOrdinal, 0);
    const byHandler = expectPlan(planIngest(fakeProbe(h264(), [aac(1, { handlerName: 'Off Vocal' }), aac(2, { handlerName: '人声 Vocal' })])));
    assert.equal(byHandler.vocal.audioOrdinal, 1);
    assert.equal(byHandler.backing.audioOrdinal, 0);
  });

  test('classifier: negations of "vocal" mean backing; generic handler names mean nothing', () => {
    assert.equal(classifyAudioStream(aac(1, { title: 'No Vocals' })), 'backing');
    assert.equal(classifyAudioStream(aac(1, { title: '伴唱' })), 'backing');
    assert.equal(classifyAudioStream(aac(1, { title: 'Accompaniment' })), 'backing');
    assert.equal(classifyAudioStream(aac(1, { title: '原唱 Vocal' })), 'vocal');
    assert.equal(classifyAudioStream(aac(1, { handlerName: 'SoundHandler' })), undefined);
    assert.equal(classifyAudioStream(aac(1, { isKaraoke: true })), 'backing');
  });

  test('ambiguous streams are refused, naming the options and listing the streams', () => {
    const probe = fakeProbe(h264(), [aac(1, { title: 'Track 1', language: 'chi' }), aac(2, { title: 'Track 2' })]);
    const err = expectError(planIngest(probe), 'ambiguous-audio', /--vocal-track N --backing-track M/);
    assert.match(err.message, /#0 aac 2ch chi "Track 1"/);
    assert.match(err.message, /#1 aac 2ch "Track 2"/);
    // Two streams both titled vocal do not say which is which either.
    expectError(planIngest(fakeProbe(h264(), [aac(1, { title: 'vocal' }), aac(2, { title: 'vocal' })])), 'ambiguous-audio');
  });

  test('one stereo stream without --vocal-channel is refused naming --vocal-channel', () => {
    expectError(planIngest(fakeProbe(h264(), [aac(1)])), 'needs-vocal-channel', /--vocal-channel left\|right/);
    expectError(planIngest(fakeProbe(h264(), [aac(1, { channels: 1 })])), 'audio-layout');
  });

  test('legacy left/right split: one stream, 原唱 on the named channel, 伴唱 on the other', () => {
    const probe = fakeProbe(stream({ index: 0, type: 'video', codec: 'mpeg2video', width: 720, height: 576, pixFmt: 'yuv420p', frameRate: 25 }), [
      stream({ index: 1, type: 'audio', codec: 'mp2', channels: 2 }),
    ]);
    const plan = expectPlan(planIngest(probe, { vocalChannel: 'right' }));
    assert.equal(plan.audioLayout, 'channel-split');
    assert.equal(plan.audioMapping, 'vocal-channel');
    assert.deepEqual([plan.vocal.streamIndex, plan.vocal.channel], [1, 'right']);
    assert.deepEqual([plan.backing.streamIndex, plan.backing.channel], [1, 'left']);
    assert.equal(plan.video.mode, 'transcode');
  });

  test('bad option combinations are refused with the reason', () => {
    const two = fakeProbe(h264(), [aac(1), aac(2)]);
    expectError(planIngest(two, { vocalChannel: 'left' }), 'bad-option', /--vocal-track N/);
    expectError(planIngest(two, { vocalTrack: 2, backingTrack: 0 }), 'bad-option', /out of range/);
    expectError(planIngest(two, { vocalTrack: 1, backingTrack: 1 }), 'bad-option', /--vocal-channel/);
    expectError(planIngest(fakeProbe(h264(), [aac(1, { channels: 6 })]), { vocalChannel: 'left' }), 'audio-layout', /stereo/);
  });

  test('a chosen stream with a codec we cannot decode is refused', () => {
    const probe = fakeProbe(h264(), [aac(1), stream({ index: 2, type: 'audio', codec: 'dts', channels: 6 })]);
    expectError(planIngest(probe, { vocalTrack: 1, backingTrack: 0 }), 'unsupported-audio-codec', /dts/);
  });

  test('H.264 ≤1080p yuv420p is remuxed; HEVC, 10-bit and interlaced are transcoded', () => {
    const audio = [aac(1, { title: '原唱' }), aac(2, { title: '伴唱' })];
    assert.equal(expectPlan(planIngest(fakeProbe(h264(), audio))).video.mode, 'remux');
    const hevc = expectPlan(planIngest(fakeProbe(h264({ codec: 'hevc', profile: 'Main' }), audio)));
    assert.equal(hevc.video.mode, 'transcode');
    assert.match(hevc.video.reasons.join(), /hevc/);
    assert.deepEqual([hevc.video.outWidth, hevc.video.outHeight], [1920, 1080]);
    assert.equal(expectPlan(planIngest(fakeProbe(h264({ pixFmt: 'yuv420p10le', profile: 'High 10' }), audio))).video.mode, 'transcode');
    const interlaced = expectPlan(planIngest(fakeProbe(h264({ fieldOrder: 'tt' }), audio)));
    assert.equal(interlaced.video.mode, 'transcode');
    assert.equal(interlaced.video.deinterlace, true);
  });

  test('4K is transcoded and scaled into 1920x1080 keeping aspect (either orientation)', () => {
    const audio = [aac(1, { title: '原唱' }), aac(2, { title: '伴唱' })];
    const uhd = expectPlan(planIngest(fakeProbe(h264({ width: 3840, height: 2160 }), audio)));
    assert.equal(uhd.video.mode, 'transcode');
    assert.deepEqual([uhd.video.outWidth, uhd.video.outHeight], [1920, 1080]);
    assert.match(uhd.video.reasons.join(), /3840x2160/);
    const portrait = expectPlan(planIngest(fakeProbe(h264({ width: 2160, height: 3840 }), audio)));
    assert.deepEqual([portrait.video.outWidth, portrait.video.outHeight], [1080, 1920]);
    // Anamorphic PAL DVD (16:9) becomes square pixels; small sources are never upscaled.
    assert.deepEqual(fitVideoSize(720, 576, { num: 64, den: 45 }, 1920, 1080), { width: 1024, height: 576 });
    assert.deepEqual(fitVideoSize(640, 360, undefined, 1920, 1080), { width: 640, height: 360 });
  });

  test('the vocal stream language tag becomes a BCP 47 tag', () => {
    const plan = expectPlan(planIngest(fakeProbe(h264(), [aac(1, { title: '原唱', language: 'chi' }), aac(2, { title: '伴唱' })])));
    assert.equal(plan.language, 'zh');
  });
});

describe('keyframeGridProblem', () => {
  const every = (stepS: number, untilS: number, offsetS = 0): number[] => {
    const out: number[] = [];
    for (let t = 0; t < untilS; t += stepS) out.push(t + offsetS);
    return out;
  };
  test('keyframes on the grid (or more often) pass', () => {
    assert.equal(keyframeGridProblem(every(4, 60), 60, 4, 25), undefined);
    assert.equal(keyframeGridProblem(every(2, 60, 1.4), 60, 4, 25), undefined); // offset start, 2 s GOP
    assert.equal(keyframeGridProblem([0, 4.04, 8.04], 10, 4, 25), undefined); // one frame late is fine
  });
  test('keyframes off the grid are reported', () => {
    assert.match(keyframeGridProblem(every(5, 60), 60, 4, 25) ?? '', /after 4 s is at 5\.000 s/);
    // A 120-frame GOP at 29.97 fps drifts 4 ms per segment: off the grid by one frame after ~9 segments.
    const drift = Array.from({ length: 40 }, (_, k) => (k * 120 * 1001) / 30000);
    assert.ok(keyframeGridProblem(drift, 150, 4, 30000 / 1001));
    assert.match(keyframeGridProblem([0], 10, 4, 25) ?? '', /no keyframe after 4 s/);
  });
});

// ---- pure: loudness, playlists, commands ---------------------------------------------------

describe('loudness maths', () => {
  test('gain = target − I, limited by the true-peak ceiling and the clamp; silence gets 0', () => {
    assert.deepEqual(computeGainDb({ inputI: -24, inputTP: -20 }, -16, -1, 20), { gainDb: 8, limitedBy: 'none' });
    assert.deepEqual(computeGainDb({ inputI: -24, inputTP: -4 }, -16, -1, 20), { gainDb: 3, limitedBy: 'true-peak' });
    assert.deepEqual(computeGainDb({ inputI: -10, inputTP: -0.5 }, -16, -1, 20), { gainDb: -6, limitedBy: 'none' });
    assert.deepEqual(computeGainDb({ inputI: -60, inputTP: -50 }, -16, -1, 20), { gainDb: 20, limitedBy: 'max-gain' });
    assert.deepEqual(computeGainDb({ inputI: -Infinity, inputTP: -Infinity }, -16, -1, 20), { gainDb: 0, limitedBy: 'silence' });
  });
  test('the manifest record survives JSON even for a silent vocal', () => {
    const silent = { inputI: -Infinity, inputTP: -Infinity, inputLRA: 0, inputThresh: -Infinity, targetI: -16, gainDb: 0, limitedBy: 'silence' as const };
    const record = loudnessForManifest(silent);
    assert.deepEqual(JSON.parse(JSON.stringify(record)), record);
    assert.equal(record['inputI'], -70);
  });
  test('loudnorm report parsing, including -inf', () => {
    const lines = ['[Parsed_loudnorm_0 @ 0x1] ', '{', '\t"input_i" : "-inf",', '\t"input_tp" : "-21.5",', '\t"input_lra" : "0.00",', '\t"input_thresh" : "-70.00",', '\t"output_i" : "-16"', '}'];
    assert.deepEqual(parseLoudnormOutput(lines), { inputI: -Infinity, inputTP: -21.5, inputLRA: 0, inputThresh: -70 });
    assert.throws(() => parseLoudnormOutput(['nothing here']), MediaError);
  });
});

const SAMPLE_PLAYLIST = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '#EXT-X-TARGETDURATION:4',
  '#EXT-X-MEDIA-SEQUENCE:0',
  '#EXT-X-PLAYLIST-TYPE:VOD',
  '#EXT-X-INDEPENDENT-SEGMENTS',
  '#EXT-X-MAP:URI="video.mp4",BYTERANGE="841@0"',
  '#EXTINF:4.000000,',
  '#EXT-X-BYTERANGE:896517@841',
  'video.mp4',
  '#EXTINF:4.000000,',
  '#EXT-X-BYTERANGE:921344',
  'video.mp4',
  '#EXTINF:2.000000,',
  '#EXT-X-BYTERANGE:444382@1818702',
  'video.mp4',
  '#EXT-X-ENDLIST',
  '',
].join('\n');

describe('playlists', () => {
  test('parses the subset ffmpeg emits: map, byte ranges (with and without offset), durations', () => {
    const p = parseMediaPlaylist(SAMPLE_PLAYLIST);
    assert.deepEqual(p.map, { uri: 'video.mp4', offsetBytes: 0, lengthBytes: 841 });
    assert.equal(p.segments.length, 3);
    assert.deepEqual(
      p.segments.map((s) => [s.offsetBytes, s.lengthBytes, s.durationS, s.startS]),
      [
        [841, 896517, 4, 0],
        [897358, 921344, 4, 4],
        [1818702, 444382, 2, 8],
      ],
    );
    assert.equal(p.totalDurationS, 10);
    assert.equal(p.independentSegments, true);
  });

  test('refuses anything outside the subset', () => {
    const bad = (text: string, pattern: RegExp): void => {
      assert.throws(() => parseMediaPlaylist(text), (err: unknown) => err instanceof MediaError && err.code === 'bad-playlist' && pattern.test(err.message));
    };
    bad(SAMPLE_PLAYLIST.replace('#EXT-X-ENDLIST\n', ''), /ENDLIST/);
    bad(SAMPLE_PLAYLIST.replace('#EXT-X-BYTERANGE:444382@1818702', '#EXT-X-BYTERANGE:444382@1818700'), /expected 1818702/);
    bad(SAMPLE_PLAYLIST.replace('#EXT-X-PLAYLIST-TYPE:VOD', '#EXT-X-KEY:METHOD=AES-128,URI="k"'), /outside the subset/);
    bad(SAMPLE_PLAYLIST.replace(/^video\.mp4$/m, '../etc/passwd'), /not a plain file name/);
    bad(SAMPLE_PLAYLIST.replace('#EXTINF:2.000000,', '#EXTINF:6.000000,'), /exceeds target duration/);
    bad(SAMPLE_PLAYLIST.replace('BYTERANGE="841@0"', 'BYTERANGE="841"'), /explicit offset/);
    bad('#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-ENDLIST\n', /MAP/);
    bad('hello', /#EXTM3U/);
  });

  test('master playlist: AUDIO group with both roles, CODECS, BANDWIDTH, RESOLUTION; quotes refused', () => {
    const text = writeMasterPlaylist({
      audio: [
        { groupId: 'aud', name: '原唱 Vocal', language: 'zh', isDefault: true, autoselect: true, channels: 2, uri: 'vocal.m3u8' },
        { groupId: 'aud', name: '伴唱 Backing', language: 'zh', isDefault: false, autoselect: true, channels: 2, uri: 'backing.m3u8' },
      ],
      variants: [{ bandwidthBitsPerS: 5_000_000, averageBandwidthBitsPerS: 4_000_000, codecs: 'avc1.640028,mp4a.40.2', width: 1920, height: 1080, frameRate: 25, audioGroupId: 'aud', uri: 'video.m3u8' }],
    });
    assert.match(text, /^#EXTM3U\n/);
    assert.match(text, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="原唱 Vocal",LANGUAGE="zh",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="vocal.m3u8"/);
    assert.match(text, /NAME="伴唱 Backing",LANGUAGE="zh",DEFAULT=NO/);
    assert.match(text, /#EXT-X-STREAM-INF:BANDWIDTH=5000000,AVERAGE-BANDWIDTH=4000000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=25.000,AUDIO="aud"\nvideo.m3u8\n/);
    assert.throws(() =>
      writeMasterPlaylist({
        audio: [{ groupId: 'aud', name: 'a "quoted" name', isDefault: true, autoselect: true, channels: 2, uri: 'vocal.m3u8' }],
        variants: [{ bandwidthBitsPerS: 1, averageBandwidthBitsPerS: 1, codecs: 'x', width: 2, height: 2, audioGroupId: 'aud', uri: 'video.m3u8' }],
      }),
    );
  });

  test('media playlist writer round-trips; merging the last segment keeps ranges contiguous', () => {
    const p = parseMediaPlaylist(SAMPLE_PLAYLIST);
    assert.deepEqual(parseMediaPlaylist(writeMediaPlaylist(p)), p);
    const merged = parseMediaPlaylist(writeMediaPlaylist(mergeLastSegment(p)));
    assert.deepEqual(
      merged.segments.map((s) => [s.offsetBytes, s.lengthBytes, s.durationS]),
      [
        [841, 896517, 4],
        [897358, 921344 + 444382, 6],
      ],
    );
    assert.equal(merged.targetDurationS, 6);
    assert.equal(merged.totalDurationS, 10);
  });

  test('boundary comparison: largest skew, or why it cannot compare', () => {
    assert.ok(Math.abs((boundarySkewS([4, 8, 10], [4.01, 8.0, 10.02]) as number) - 0.02) < 1e-9);
    assert.equal(typeof boundarySkewS([4, 8, 10], [4, 8, 10, 10.03]), 'string');
  });
});

describe('package command', () => {
  test('channel split uses pan, both roles get the same gain, transcode forces keyframes on the grid', () => {
    const probe = fakeProbe(stream({ index: 0, type: 'video', codec: 'mpeg2video', width: 720, height: 576, pixFmt: 'yuv420p', frameRate: 25, durationS: 200 }), [
      stream({ index: 1, type: 'audio', codec: 'mp2', channels: 2 }),
    ]);
    const plan = expectPlan(planIngest(probe, { vocalChannel: 'left' }));
    const cmd = buildPackageCommand(plan, 3.5, '/out', mediaConfig());
    assert.match(cmd.complexFilter, /\[0:1\]aresample=48000:async=1:first_pts=0,pan=stereo\|c0=c0\|c1=c0,.*volume=3\.50dB.*\[vocal\]/);
    assert.match(cmd.complexFilter, /\[0:1\]aresample=48000:async=1:first_pts=0,pan=stereo\|c0=c1\|c1=c1,.*volume=3\.50dB.*\[backing\]/);
    assert.match(cmd.complexFilter, /atrim=start=0\.000000:end=200\.000000/);
    const args = cmd.outputOptions.join(' ');
    assert.match(args, /-force_key_frames expr:gte\(t,n_forced\*4\)/);
    assert.match(args, /-hls_segment_type fmp4 -hls_flags single_file\+independent_segments/);
    assert.match(args, /-var_stream_map v:0,name:video a:0,name:vocal a:1,name:backing/);
    assert.equal(cmd.output, '/out/%v.m3u8');
  });
});

describe('small pure helpers', () => {
  test('sniffing words refusals: text, MP4, random bytes', () => {
    assert.equal(sniffBytes(Buffer.from('hello\nworld, 你好\n')), 'text');
    assert.equal(sniffBytes(Buffer.from('\0\0\0\x20ftypisom\0\0\x02\0', 'latin1')), 'mp4');
    assert.equal(sniffBytes(Buffer.from([0xff, 0x00, 0x13, 0x88, 0x01, 0x02, 0x03, 0x04, 0x05])), 'unknown');
  });
  test('title card: a CJK title without a CJK font falls back to the caption', () => {
    assert.deepEqual(chooseTitleText('月亮代表我的心', 'Yueliang', { dejavu: true }), { text: 'Yueliang', font: DEJAVU_FONT });
    assert.deepEqual(chooseTitleText('月亮代表我的心', 'Yueliang', { dejavu: true, cjk: '/f.ttc' }), { text: '月亮代表我的心', font: '/f.ttc' });
    assert.deepEqual(chooseTitleText('Yesterday', undefined, { dejavu: true }), { text: 'Yesterday', font: DEJAVU_FONT });
    assert.deepEqual(chooseTitleText('Yesterday', undefined, { dejavu: false }), { text: '' });
  });
  test('dominant frequency of a synthetic tone', () => {
    const rate = 48000;
    const pcm = new Float32Array(rate);
    for (let i = 0; i < pcm.length; i++) pcm[i] = 0.3 * Math.sin((2 * Math.PI * 523.25 * i) / rate) + 0.05 * Math.sin((2 * Math.PI * 1500 * i) / rate);
    assert.ok(Math.abs(dominantFrequencyOfPcm(pcm, rate) - 523.25) < 1);
  });
});

// ---- real ffmpeg ------------------------------------------------------------------------------

describe('with ffmpeg', () => {
  let dir = '';
  let twoStreams = ''; // MP4, H.264, 伴唱 stream first, titled
  let legacyLeft = ''; // .mpg, 原唱 on the left channel
  let legacyRight = ''; // .mpg, 原唱 on the right channel
  const limits = mediaConfig();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ktv-media-test-'));
    const common = { title: '月亮代表我的心', caption: 'Yueliang Daibiao Wo De Xin', durationS: 10, vocalHz: VOCAL_HZ, backingHz: BACKING_HZ };
    twoStreams = (await makeDemoSong(path.join(dir, 'two.mp4'), { ...common, layout: 'two-streams', audioOrder: 'backing-first', audioLanguage: 'chi' })).file;
    legacyLeft = (await makeDemoSong(path.join(dir, 'left.mpg'), { ...common, layout: 'legacy-lr', vocalChannel: 'left' })).file;
    legacyRight = (await makeDemoSong(path.join(dir, 'right.mpg'), { ...common, layout: 'legacy-lr', vocalChannel: 'right' })).file;
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('probe refusals', () => {
    test('random bytes named .mp4: not media', async () => {
      const file = path.join(dir, 'random.mp4');
      await writeFile(file, randomBytes(200_000));
      await expectReject(probeMedia(file, limits), 'not-media', /not a media file/);
    });

    test('a text file renamed .mp4: not media, and says it is text', async () => {
      const file = path.join(dir, 'notes.mp4');
      await writeFile(file, '这不是视频 — this is a text file\nline two\n');
      await expectReject(probeMedia(file, limits), 'not-media', /text file/);
    });

    test('an HLS playlist renamed .mp4 is refused without ffmpeg following it', async () => {
      const file = path.join(dir, 'playlist.mp4');
      await writeFile(file, `#EXTM3U\n#EXTINF:10,\n${twoStreams}\n#EXT-X-ENDLIST\n`);
      await expectReject(probeMedia(file, limits), 'not-media');
    });

    test('an MP4 cut in half (index at the end): truncated', async () => {
      const file = path.join(dir, 'half.mp4');
      await copyFile(twoStreams, file);
      await truncate(file, Math.floor((await stat(file)).size / 2));
      await expectReject(probeMedia(file, limits), 'truncated', /moov/);
    });

    test('a faststart MP4 cut in half probes fine but fails the tail decode: truncated', async () => {
      const full = await makeDemoSong(path.join(dir, 'fast.mp4'), { title: 'Fast', durationS: 10, vocalHz: VOCAL_HZ, backingHz: BACKING_HZ, layout: 'two-streams', faststart: true });
      await truncate(full.file, Math.floor(full.sizeBytes / 2));
      await expectReject(probeMedia(full.file, limits), 'truncated', /near the end/);
    });

    test('audio only: no video', async () => {
      const file = path.join(dir, 'audio.m4a');
      await runFfmpeg(
        { label: 'make audio-only', inputs: [{ source: 'sine=frequency=440:duration=3', options: ['-f', 'lavfi'] }], outputOptions: ['-c:a', 'aac', '-f', 'mp4'], output: file, timeoutMs: 60_000 },
        limits,
      );
      await expectReject(probeMedia(file, limits), 'no-video', /no video/);
    });

    test('a WAV file: container not accepted', async () => {
      const file = path.join(dir, 'tone.wav');
      await runFfmpeg({ label: 'make wav', inputs: [{ source: 'sine=duration=2', options: ['-f', 'lavfi'] }], outputOptions: ['-f', 'wav'], output: file, timeoutMs: 60_000 }, limits);
      await expectReject(probeMedia(file, limits), 'not-media', /not an accepted video container \(wav\)/);
    });

    test('one stereo stream and no channel option: the plan names --vocal-channel', async () => {
      const probe = await probeMedia(legacyLeft, limits);
      assert.equal(probe.audio.length, 1);
      expectError(planIngest(probe, {}, limits), 'needs-vocal-channel', /--vocal-channel left\|right/);
    });

    test('too long and too big, against small configured limits', async () => {
      await expectReject(probeMedia(twoStreams, mediaConfig({ maxDurationS: 5 })), 'too-long', /too long: 0:10 \(limit 0:05\)/);
      await expectReject(probeMedia(twoStreams, mediaConfig({ maxSourceBytes: 1000 })), 'too-big', /too big: .* \(limit 1000 B\)/);
    });

    test('a probe deadline that cannot be met kills ffprobe and says so', async () => {
      await expectReject(probeMedia(twoStreams, mediaConfig({ probeTimeoutMs: 1 })), 'timeout', /deadline/);
    });

    test('a good file probes with streams, titles and languages', async () => {
      const probe = await probeMedia(twoStreams, limits);
      assert.equal(probe.video.codec, 'h264');
      assert.deepEqual([probe.video.width, probe.video.height], [640, 360]);
      assert.deepEqual(
        probe.audio.map((a) => [a.codec, a.channels, a.sampleRateHz, a.handlerName, a.language]),
        [
          ['aac', 2, 48000, '伴唱 Backing', 'chi'],
          ['aac', 2, 48000, '原唱 Vocal', 'chi'],
        ],
      );
      assert.ok(Math.abs(probe.durationS - 10) < 0.1);
      assert.deepEqual(probe.warnings, []);
    });
  });

  async function ingest(source: string, options: Parameters<typeof planIngest>[1], name: string, overrides: Partial<MediaConfig> = {}): Promise<PackageResult> {
    const cfg = mediaConfig(overrides);
    const probe = await probeMedia(source, cfg);
    const plan = expectPlan(planIngest(probe, options, cfg));
    const loudness = await measureSongLoudness(source, plan, cfg);
    const outDir = path.join(dir, name);
    await mkdir(outDir, { recursive: true });
    return packageHls(source, plan, loudness, outDir, cfg);
  }

  /** init segment + segment k of a rendition, as a player would fetch them with Range requests. */
  async function segmentFile(result: PackageResult, role: 'vocal' | 'backing', k: number): Promise<string> {
    const r = result.renditions[role];
    const bytes = await readFile(r.file);
    const { map } = r.playlist;
    const seg = r.playlist.segments[k]!;
    const out = path.join(path.dirname(r.file), `${role}-seg${k}.mp4`);
    await writeFile(out, Buffer.concat([bytes.subarray(map.offsetBytes, map.offsetBytes + map.lengthBytes), bytes.subarray(seg.offsetBytes, seg.offsetBytes + seg.lengthBytes)]));
    return out;
  }

  async function checkPackaged(result: PackageResult, expectedMode: 'remux' | 'transcode', durationS = 10): Promise<void> {
    const { video, vocal, backing } = result.renditions;
    assert.equal(result.plan.video.mode, expectedMode);

    // Playlists on disk parse, and ranges tile each file exactly.
    for (const r of [video, vocal, backing]) {
      const parsed = parseMediaPlaylist(await readFile(r.playlistFile, 'utf8'));
      assert.equal(parsed.segments.length, r.segmentCount);
      const last = parsed.segments[parsed.segments.length - 1]!;
      assert.equal(last.offsetBytes + last.lengthBytes, (await stat(r.file)).size);
      assert.ok(Math.abs(r.durationS - durationS) < 0.1, `${r.role} lasts ${r.durationS} s`);
    }
    // On a 4 s grid: the same number of segments everywhere (a 12 s song has no tiny 4th audio
    // segment: AAC priming's tail is merged), boundaries within 0.1 s.
    const segments = Math.ceil(durationS / 4);
    assert.deepEqual([video.segmentCount, vocal.segmentCount, backing.segmentCount], [segments, segments, segments]);
    for (const r of [vocal, backing]) {
      r.playlist.segments.forEach((s, i) => {
        const v = video.playlist.segments[i]!;
        assert.ok(Math.abs(r.startS + s.startS + s.durationS - (video.startS + v.startS + v.durationS)) <= 0.1, `${r.role} segment ${i} boundary`);
      });
    }
    assert.ok(result.maxBoundarySkewS <= 0.1);

    // Master playlist: what the room box needs to pick video and toggle 原唱/伴唱.
    const master = await readFile(result.masterFile, 'utf8');
    assert.equal(master, result.masterText);
    assert.match(master, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="原唱 Vocal",.*DEFAULT=YES,AUTOSELECT=YES,.*URI="vocal.m3u8"/);
    assert.match(master, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="伴唱 Backing",.*DEFAULT=NO,.*URI="backing.m3u8"/);
    const inf = /#EXT-X-STREAM-INF:BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=(\d+),CODECS="(avc1\.[0-9A-F]{6}),mp4a\.40\.2",RESOLUTION=640x360,FRAME-RATE=25\.000,AUDIO="aud"\nvideo\.m3u8/.exec(master);
    assert.ok(inf, master);
    assert.equal(inf[3], video.codecs);
    assert.match(video.codecs, /^avc1\.(42|4D|64)/);
    assert.equal(Number(inf[1]), video.bandwidthBitsPerS + Math.max(vocal.bandwidthBitsPerS, backing.bandwidthBitsPerS));
    assert.ok(Number(inf[2]) <= Number(inf[1]));

    // Each role carries its own tone — in the whole file and in one byte-range segment.
    const near = (hz: number, want: number, what: string): void => assert.ok(Math.abs(hz - want) < TONE_TOLERANCE_HZ, `${what}: ${hz.toFixed(1)} Hz, want ${want}`);
    near(await dominantFrequencyHz(vocal.file, 'a:0', 2, 2), VOCAL_HZ, '原唱');
    near(await dominantFrequencyHz(backing.file, 'a:0', 2, 2), BACKING_HZ, '伴唱');
    near(await dominantFrequencyHz(await segmentFile(result, 'vocal', 1), 'a:0', 0.5, 2), VOCAL_HZ, '原唱 segment 1');
    near(await dominantFrequencyHz(await segmentFile(result, 'backing', 1), 'a:0', 0.5, 2), BACKING_HZ, '伴唱 segment 1');
    near(await dominantFrequencyHz(await segmentFile(result, 'vocal', segments - 1), 'a:0', 0.2, 1), VOCAL_HZ, '原唱 last segment');

    // The gain landed the vocal on the loudness target, and the backing got the same gain.
    const measured = await measureR128(vocal.file, { stream: 'a:0', channel: 'both', durationS, untrusted: false }, limits);
    assert.ok(Math.abs(measured.inputI - limits.loudnessTargetLufs) <= LOUDNESS_TOLERANCE_LU, `vocal at ${measured.inputI} LUFS`);
    assert.equal(result.loudness.limitedBy, 'none');
    assert.ok(result.loudness.gainDb > 5, 'the quiet demo tone needed a boost');
  }

  describe('packaging', () => {
    test('two-streams MP4 (H.264, keyframes on the grid): remuxed, roles from titles', async () => {
      const result = await ingest(twoStreams, {}, 'out-two');
      assert.equal(result.plan.audioMapping, 'titles');
      assert.equal(result.plan.vocal.audioOrdinal, 1, '原唱 is the second stream in this file');
      assert.match(result.masterText, /LANGUAGE="zh"/);
      await checkPackaged(result, 'remux');
    });

    test('legacy .mpg, 原唱 on the left: transcoded, channels split into two renditions', async () => {
      const result = await ingest(legacyLeft, { vocalChannel: 'left' }, 'out-left');
      assert.equal(result.plan.audioLayout, 'channel-split');
      await checkPackaged(result, 'transcode');
    });

    test('legacy .mpg, 原唱 on the right', async () => {
      const result = await ingest(legacyRight, { vocalChannel: 'right' }, 'out-right');
      await checkPackaged(result, 'transcode');
    });

    test('H.264 with keyframes off the segment grid is switched to transcode, and says why (12 s: a grid multiple)', async () => {
      const source = await makeDemoSong(path.join(dir, 'offgrid.mp4'), {
        title: 'Off grid',
        durationS: 12,
        vocalHz: VOCAL_HZ,
        backingHz: BACKING_HZ,
        layout: 'two-streams',
        keyframeIntervalS: 3,
      });
      const result = await ingest(source.file, {}, 'out-offgrid');
      assert.match(result.plan.video.reasons.join(), /keyframes off the segment grid/);
      await checkPackaged(result, 'transcode', 12);
    });

    test('a packaging deadline that cannot be met kills ffmpeg and leaves nothing behind', async () => {
      const outDir = path.join(dir, 'out-deadline');
      await mkdir(outDir);
      const cfg = mediaConfig({ ffmpegTimeoutBaseMs: 1, packageTimeoutMsPerMediaS: 1 });
      const probe = await probeMedia(legacyLeft, limits);
      const plan = expectPlan(planIngest(probe, { vocalChannel: 'left' }, limits));
      const loudness = { inputI: -20, inputTP: -20, inputLRA: 0, inputThresh: -30, targetI: -16, gainDb: 4, limitedBy: 'none' as const };
      await expectReject(packageHls(legacyLeft, plan, loudness, outDir, cfg), 'timeout', /packaging .* deadline/);
      assert.deepEqual(await readdir(outDir), []);
      assert.deepEqual(await liveFfmpegChildren(), []);
    });

    test('cancelling packaging kills ffmpeg', async () => {
      const outDir = path.join(dir, 'out-abort');
      await mkdir(outDir);
      const probe = await probeMedia(legacyLeft, limits);
      const plan = expectPlan(planIngest(probe, { vocalChannel: 'left' }, limits));
      const loudness = { inputI: -20, inputTP: -20, inputLRA: 0, inputThresh: -30, targetI: -16, gainDb: 4, limitedBy: 'none' as const };
      const controller = new AbortController();
      let started = false;
      // Cancel once ffmpeg is actually running (the runner logs its start at debug level).
      const log: Logger = {
        debug: (msg) => {
          if (msg === 'ffmpeg start') {
            started = true;
            controller.abort();
          }
        },
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
        child: () => log,
      };
      await expectReject(packageHls(legacyLeft, plan, loudness, outDir, limits, { signal: controller.signal, log }), 'aborted', /ffmpeg was killed/);
      assert.ok(started);
      assert.deepEqual(await readdir(outDir), []);
      assert.deepEqual(await liveFfmpegChildren(), []);
    });

    test('an output folder whose name ffmpeg would interpret is refused', async () => {
      const probe = await probeMedia(legacyLeft, limits);
      const plan = expectPlan(planIngest(probe, { vocalChannel: 'left' }, limits));
      const loudness = { inputI: -20, inputTP: -20, inputLRA: 0, inputThresh: -30, targetI: -16, gainDb: 4, limitedBy: 'none' as const };
      await expectReject(packageHls(legacyLeft, plan, loudness, path.join(dir, 'out%v'), limits), 'bad-option');
    });
  });

  test('inputUrl never lets a file name become an option or a protocol', () => {
    assert.equal(inputUrl('-i'), 'file:' + path.resolve('-i'));
    assert.equal(inputUrl('http://example.com/x.mp4'), 'file:' + path.resolve('http://example.com/x.mp4'));
  });
});
