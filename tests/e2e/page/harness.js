// In-page side of the end-to-end harness. One adapter per player library (Shaka Player,
// hls.js, dash.js) behind one interface that the runner drives through page.evaluate:
// e2e.start(player, options), e2e.state(), e2e.seek(seconds), e2e.selectAudio(languageCodes),
// e2e.selectVideo(height), e2e.textTracks(), e2e.selectText(languageCodes, label),
// e2e.activeCues();
// the state says whether the stream is live and where the player's live edge is.
'use strict';

(() => {
  const video = document.getElementById('video');
  const errors = [];
  const report = (source, fatal, code, message) =>
    errors.push({ at: Math.round(performance.now()), source, fatal: Boolean(fatal), code: String(code), message: String(message || '') });

  // Where playback really began: polling from the runner may come late, the event does not.
  let startedAt = null;
  video.addEventListener('playing', () => {
    if (startedAt === null) startedAt = video.currentTime;
  });
  video.addEventListener('error', () => {
    const e = video.error;
    report('video', true, `MEDIA_ERR ${e ? e.code : '?'}`, e ? e.message : '');
  });

  // DASH-IF's Clear Key scheme (dash.js's KeySystemClearKey).
  const CLEAR_KEY_SCHEME = 'urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e';
  const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));
  const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  // A short, readable form of an error's detail values (URIs, HTTP statuses, nested errors).
  const describe = (value) => {
    if (value === null || value === undefined) return '';
    if (typeof value !== 'object') return String(value);
    if (value.message) return value.message;
    if (value.code !== undefined) return `code ${value.code}`;
    return '';
  };
  const play = () => video.play().catch(() => {});

  // A Shaka text displayer that keeps the cues Shaka hands it in one TextTrack of the media
  // element, shown when text is visible, as Shaka 4's SimpleTextDisplayer did. Shaka 5's own
  // NativeTextDisplayer shows cues in <track> elements whose placeholder src Chromium loads
  // when a track is first shown, and that load empties the track's cue list: cues appended
  // before it ends are lost, at random in headless Chromium. Like Shaka's displayers, a cue
  // already present (same times and text: a cue repeated in the next segment) is not added
  // again.
  class CueTrackDisplayer {
    constructor() {
      this.track = video.addTextTrack('subtitles', 'shaka');
      this.track.mode = 'hidden';
      this.visible = false;
    }
    static text(cue) {
      const nested = (cue.nestedCues || []).map((c) => (c.lineBreak ? '\n' : CueTrackDisplayer.text(c))).join('');
      return `${cue.payload || ''}${nested}`;
    }
    configure() {}
    append(cues) {
      const present = Array.from(this.track.cues || []);
      for (const cue of cues) {
        const text = CueTrackDisplayer.text(cue);
        const same = (c) => c.startTime === cue.startTime && c.endTime === cue.endTime && c.text === text;
        if (text && !present.some(same)) this.track.addCue(new VTTCue(cue.startTime, cue.endTime, text));
      }
    }
    remove(start, end) {
      for (const cue of Array.from(this.track.cues || [])) {
        if (cue.startTime < end && cue.endTime > start) this.track.removeCue(cue);
      }
      return true;
    }
    destroy() {
      this.track.mode = 'disabled';
      return Promise.resolve();
    }
    isTextVisible() {
      return this.visible;
    }
    setTextVisibility(on) {
      this.visible = on;
      this.track.mode = on ? 'showing' : 'hidden';
    }
    setTextLanguage() {}
    enableTextDisplayer() {}
  }

  const adapters = {
    shaka: {
      async start({ url, clearKeys }) {
        shaka.polyfill.installAll();
        const player = new shaka.Player();
        this.player = player;
        await player.attach(video);
        player.addEventListener('error', (event) => this.error(event.detail));
        // The cues Shaka hands its text displayer, in one TextTrack of the media element (see
        // CueTrackDisplayer).
        this.displayer = new CueTrackDisplayer();
        player.configure({ textDisplayFactory: () => this.displayer });
        // Raw keys given to the player (e.g. a wrong one) instead of the origin's licence.
        if (clearKeys) player.configure({ drm: { clearKeys } });
        try {
          await player.load(url);
        } catch (e) {
          this.error(e);
          return;
        }
        play();
      },
      error(e) {
        const data = (e.data || []).map(describe).filter(Boolean).slice(0, 3).join('; ');
        // Shaka: severity 2 is CRITICAL (playback cannot continue).
        report('shaka', e.severity === 2, `${e.category}/${e.code}`, data);
      },
      variants() {
        return this.player.getVariantTracks().map((t) => ({
          bandwidth: t.bandwidth, width: t.width, height: t.height, language: t.language, active: t.active,
        }));
      },
      audioTracks() {
        return this.player.getAudioTracks().map((t) => ({ language: t.language, label: t.label, active: t.active }));
      },
      selectAudio(codes) {
        const track = this.player.getAudioTracks().find((t) => codes.includes(t.language));
        if (track) this.player.selectAudioTrack(track);
        return Boolean(track);
      },
      // The rendition of `height` in the active language, adaptation off; its video bitrate.
      selectVideo(height) {
        const tracks = this.player.getVariantTracks();
        const active = tracks.find((t) => t.active);
        const track = tracks.find((t) => t.height === height && (!active || t.language === active.language));
        if (!track) return null;
        this.player.configure({ abr: { enabled: false } });
        this.player.selectVariantTrack(track, /* clearBuffer= */ true);
        return track.videoBandwidth;
      },
      seek(seconds) {
        video.currentTime = seconds;
      },
      live() {
        return { isLive: this.player.isLive(), edge: this.player.seekRange().end };
      },
      textTracks() {
        return this.player.getTextTracks().map((t) => ({ language: t.language, label: t.label, active: t.active }));
      },
      selectText(codes, label) {
        const track = this.player.getTextTracks().find((t) => codes.includes(t.language) && t.label === label);
        if (!track) return false;
        this.player.selectTextTrack(track);
        this.displayer.setTextVisibility(true);
        return true;
      },
      // The thumbnail Shaka picks for `seconds` from the first image track (thumbs.mjs).
      async thumbnail(seconds) {
        const tracks = this.player.getImageTracks();
        if (tracks.length === 0) return { tracks: 0 };
        const t = await this.player.getThumbnails(tracks[0].id, seconds);
        if (!t) return { tracks: tracks.length };
        const { uris, startTime, duration, positionX, positionY, width, height } = t;
        return { tracks: tracks.length, uris, startTime, duration, positionX, positionY, width, height };
      },
    },

    hlsjs: {
      async start({ url, licenseUrl }) {
        const config = {};
        // hls.js takes the Clear Key licence URL from its config; the KID comes from KEYID.
        if (licenseUrl) {
          config.emeEnabled = true;
          config.drmSystems = { 'org.w3.clearkey': { licenseUrl } };
        }
        const hls = new Hls(config);
        this.hls = hls;
        hls.on(Hls.Events.ERROR, (_, d) => {
          const status = d.response && d.response.code ? `HTTP ${d.response.code}` : '';
          const detail = [status, describe(d.error), d.reason].filter(Boolean).join('; ');
          report('hls.js', d.fatal, `${d.type}/${d.details}`, detail);
        });
        hls.on(Hls.Events.MANIFEST_PARSED, play);
        hls.loadSource(url);
        hls.attachMedia(video);
      },
      variants() {
        return this.hls.levels.map((l, i) => ({
          bandwidth: l.bitrate, width: l.width, height: l.height, language: '', active: i === this.hls.currentLevel,
        }));
      },
      audioTracks() {
        return this.hls.audioTracks.map((t, i) => ({ language: t.lang, label: t.name, active: i === this.hls.audioTrack }));
      },
      selectAudio(codes) {
        const index = this.hls.audioTracks.findIndex((t) => codes.includes(t.lang));
        if (index >= 0) this.hls.audioTrack = index;
        return index >= 0;
      },
      seek(seconds) {
        video.currentTime = seconds;
      },
      live() {
        const details = this.hls.latestLevelDetails;
        return { isLive: Boolean(details && details.live), edge: details ? details.edge : null };
      },
      textTracks() {
        return this.hls.subtitleTracks.map((t, i) => ({ language: t.lang, label: t.name, active: i === this.hls.subtitleTrack }));
      },
      selectText(codes, label) {
        const index = this.hls.subtitleTracks.findIndex((t) => codes.includes(t.lang) && t.name === label);
        if (index >= 0) {
          this.hls.subtitleDisplay = true;
          this.hls.subtitleTrack = index;
        }
        return index >= 0;
      },
    },

    dashjs: {
      async start({ url, clearKeys }) {
        const player = dashjs.MediaPlayer().create();
        this.player = player;
        player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_NONE } });
        if (clearKeys) {
          const keys = {};
          for (const [kid, key] of Object.entries(clearKeys)) keys[base64url(hexToBytes(kid))] = base64url(hexToBytes(key));
          player.setProtectionData({ 'org.w3.clearkey': { clearkeys: keys } });
          // dash.js's Smooth parser (MssParser.processManifest) signals only PlayReady and
          // Widevine, from the ProtectionHeader, and its init segments carry only their pssh
          // boxes, so Clear Key is never matched. Offer it next to them, after PlayReady, whose
          // KID (from the WRMHEADER) stays the init segment's default KID.
          player.on(dashjs.MediaPlayer.events.MANIFEST_LOADED, ({ data }) => {
            if (data.protocol !== 'MSS') return;
            for (const set of data.Period[0].AdaptationSet) {
              const offers = set.ContentProtection || [];
              if (offers.length && !offers.some((cp) => cp.schemeIdUri === CLEAR_KEY_SCHEME)) offers.push({ schemeIdUri: CLEAR_KEY_SCHEME, value: 'ClearKey1.0' });
            }
          });
        }
        const events = dashjs.MediaPlayer.events;
        player.on(events.ERROR, (e) => report('dash.js', true, e.error && e.error.code, describe(e.error)));
        player.on(events.PLAYBACK_ERROR, (e) => report('dash.js', true, 'playback', describe(e.error)));
        player.initialize(video, url, true);
      },
      variants() {
        const current = this.player.getCurrentRepresentationForType('video');
        return this.player.getRepresentationsByType('video').map((r) => ({
          bandwidth: r.bandwidth, width: r.width, height: r.height, language: '', active: Boolean(current && current.id === r.id),
        }));
      },
      audioTracks() {
        const current = this.player.getCurrentTrackFor('audio');
        return this.player.getTracksFor('audio').map((t) => ({
          language: t.lang, label: (t.labels && t.labels[0] && t.labels[0].text) || '', active: Boolean(current && current.id === t.id && current.lang === t.lang),
        }));
      },
      selectAudio(codes) {
        const track = this.player.getTracksFor('audio').find((t) => codes.includes(t.lang));
        if (track) this.player.setCurrentTrack(track);
        return Boolean(track);
      },
      // The rendition of `height`, adaptation off, the buffer ahead replaced; its bitrate.
      selectVideo(height) {
        const representation = this.player.getRepresentationsByType('video').find((r) => r.height === height);
        if (!representation) return null;
        this.player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
        this.player.setRepresentationForTypeById('video', representation.id, /* forceReplace= */ true);
        return representation.bandwidth;
      },
      seek(seconds) {
        this.player.seek(seconds);
      },
      live() {
        const dvr = this.player.getDvrWindow();
        return { isLive: this.player.isDynamic(), edge: dvr ? dvr.end : null };
      },
      textTracks() {
        const current = this.player.getCurrentTrackFor('text');
        const label = (t) => (t.labels && t.labels[0] && t.labels[0].text) || '';
        return this.player.getTracksFor('text').map((t) => ({
          language: t.lang, label: label(t), active: Boolean(current && current.id === t.id && label(current) === label(t)),
        }));
      },
      selectText(codes, label) {
        // setTextTrack takes the position among the text tracks, in getTracksFor order.
        const labelOf = (t) => (t.labels && t.labels[0] && t.labels[0].text) || '';
        const index = this.player.getTracksFor('text').findIndex((t) => codes.includes(t.lang) && labelOf(t) === label);
        if (index >= 0) {
          this.player.enableText(true);
          this.player.setTextTrack(index);
        }
        return index >= 0;
      },
    },
  };

  let adapter = null;
  // Each accessor may throw before the player has a manifest: report empty lists then.
  const safely = (f) => {
    try {
      return f() || [];
    } catch (e) {
      return [];
    }
  };

  window.e2e = {
    async start(player, options) {
      adapter = adapters[player];
      try {
        await adapter.start(options);
      } catch (e) {
        report('page', true, 'start', describe(e));
      }
    },
    state() {
      const quality = video.getVideoPlaybackQuality();
      return {
        now: performance.now(),
        currentTime: video.currentTime,
        startedAt,
        duration: video.duration,
        paused: video.paused,
        seeking: video.seeking,
        ended: video.ended,
        readyState: video.readyState,
        width: video.videoWidth,
        height: video.videoHeight,
        decodedFrames: quality.totalVideoFrames,
        droppedFrames: quality.droppedVideoFrames,
        variants: adapter ? safely(() => adapter.variants()) : [],
        audioTracks: adapter ? safely(() => adapter.audioTracks()) : [],
        // Whether the player plays a live stream, and where its live edge is (media time).
        live: adapter ? safely(() => adapter.live()) : {},
        errors: errors.slice(),
      };
    },
    seek(seconds) {
      adapter.seek(seconds);
      play();
    },
    // The thumbnail the player shows for `seconds` (players with an image track API only).
    thumbnail(seconds) {
      return adapter && adapter.thumbnail ? adapter.thumbnail(seconds) : null;
    },
    // The first track whose language is one of `codes` (players differ in ISO 639-1 / -2).
    selectAudio(codes) {
      return adapter.selectAudio(codes);
    },
    // Fixes the video rendition of `height`; its video bitrate (null when there is none).
    selectVideo(height) {
      return adapter.selectVideo(height);
    },
    // Subtitles: the player's text tracks, choosing one by language and NAME / Label, and the
    // text of the cues the media element shows now (from its showing text tracks).
    textTracks() {
      return adapter ? safely(() => adapter.textTracks()) : [];
    },
    selectText(codes, label) {
      return adapter.selectText(codes, label);
    },
    activeCues() {
      const out = [];
      for (const track of Array.from(video.textTracks)) {
        if (track.mode !== 'showing' || !track.activeCues) continue;
        for (const cue of Array.from(track.activeCues)) out.push({ track: track.label, language: track.language, text: cue.text });
      }
      return out;
    },
    pause() {
      video.pause();
    },
  };
})();
