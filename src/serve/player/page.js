'use strict';
// Plays the manifest named in the video's data-src with Shaka Player and lists what the player
// sees. Player output goes into the page as text only (textContent), never as markup.
(async () => {
  const video = document.getElementById('video');
  const byId = (id) => document.getElementById(id);
  const item = (text) => {
    const li = document.createElement('li');
    li.textContent = text;
    return li;
  };
  const fail = (text) => byId('errors').appendChild(item(text));
  const describe = (e) => {
    const data = (e.data || []).map((d) => (d !== null && typeof d === 'object' ? d.message || d.code || '' : String(d)));
    const severity = e.severity === 2 ? 'critical' : 'recoverable';
    return `${severity} error ${e.code} (category ${e.category})${data.length ? `: ${data.join(', ')}` : ''}`;
  };
  if (!window.shaka) {
    fail('Shaka Player did not load (see [player] script_url)');
    return;
  }
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    fail('This browser cannot run Shaka Player');
    return;
  }
  const player = new shaka.Player();
  window.player = player; // for the browser console
  await player.attach(video);
  player.addEventListener('error', (event) => fail(describe(event.detail)));

  const render = () => {
    const rows = player.getVariantTracks().map((t) => {
      const tr = document.createElement('tr');
      const cells = [
        t.bandwidth,
        t.width && t.height ? `${t.width}x${t.height}` : '',
        t.codecs || '',
        t.language || '',
        t.active ? 'yes' : '',
      ];
      for (const value of cells) {
        const td = document.createElement('td');
        td.textContent = String(value);
        tr.appendChild(td);
      }
      return tr;
    });
    byId('variants').replaceChildren(...rows);
    const tracks = player.getAudioTracks().map((t) => {
      const li = item(`${t.language || 'und'} ${t.label || ''} ${t.channelsCount ? `${t.channelsCount} ch` : ''}`);
      li.dataset.language = t.language;
      if (t.active) {
        li.appendChild(document.createTextNode(' (playing)'));
      } else {
        const button = document.createElement('button');
        button.textContent = 'play this';
        button.addEventListener('click', () => player.selectAudioTrack(t));
        li.appendChild(button);
      }
      return li;
    });
    byId('audio').replaceChildren(...tracks);
  };
  for (const name of ['trackschanged', 'variantchanged', 'adaptation', 'audiotrackschanged']) {
    player.addEventListener(name, render);
  }
  try {
    await player.load(video.dataset.src);
  } catch (e) {
    fail(describe(e));
  }
  render();
})();
