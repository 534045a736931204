// The upload page: XMLHttpRequest for the upload (fetch has no upload progress), then a poll of
// /api/v1/jobs/:id every 500 ms for the packaging stage until the upload request answers.
// Text from the server only ever goes into textContent (a song title is not markup).
'use strict';

(function () {
  var TOKEN_KEY = 'ktv.library.adminToken';
  var POLL_MS = 500;
  var STAGES = {
    receiving: '接收 Receiving',
    queued: '排队 Queued',
    hashing: '校验 Hashing',
    probing: '分析 Probing',
    loudness: '响度 Loudness',
    packaging: '打包 Packaging',
    storing: '存储 Storing',
    indexing: '入库 Indexing',
    done: '完成 Done',
    failed: '失败 Failed',
  };
  var LANGUAGE_NAMES = { zh: '国语', yue: '粤语', nan: '闽南语', en: 'English', ja: '日语', ko: '韩语', other: '其他' };

  var $ = function (id) { return document.getElementById(id); };
  var form = $('upload-form');
  var tokenInput = $('adminToken');
  var submit = $('submit');
  var outcome = $('outcome');
  var recentRows = $('recent-rows');

  try { tokenInput.value = localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { /* storage off */ }
  tokenInput.addEventListener('change', function () {
    try { localStorage.setItem(TOKEN_KEY, tokenInput.value.trim()); } catch (e) { /* storage off */ }
  });

  /** 24 random URL-safe characters (crypto.getRandomValues works on plain http too). */
  function newJobId() {
    var bytes = new Uint8Array(18);
    crypto.getRandomValues(bytes);
    var alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    var out = '';
    for (var i = 0; i < bytes.length; i++) out += alphabet[bytes[i] & 63];
    return out + '-' + Date.now().toString(36);
  }

  function pct(fraction) {
    return typeof fraction === 'number' ? Math.round(Math.max(0, Math.min(1, fraction)) * 100) : undefined;
  }

  function setUpload(fraction) {
    var p = pct(fraction) || 0;
    $('upload-bar').value = p;
    $('upload-pct').textContent = p + '%';
  }

  function setStage(stage, fraction) {
    $('stage-label').textContent = STAGES[stage] || stage;
    var p = pct(fraction);
    if (p === undefined) {
      $('stage-bar').removeAttribute('value'); // indeterminate
      $('stage-pct').textContent = '';
    } else {
      $('stage-bar').value = p;
      $('stage-pct').textContent = p + '%';
    }
  }

  function showError(message) {
    outcome.hidden = false;
    outcome.className = 'error';
    outcome.textContent = '失败 Failed: ' + message;
  }

  function formatDuration(seconds) {
    var s = Math.round(seconds);
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  function showResult(r) {
    outcome.hidden = false;
    outcome.className = 'ok';
    outcome.textContent = '';
    var head = document.createElement('div');
    head.textContent = r.existing ? '已在曲库中 Already in the library' : '入库成功 Song stored';
    outcome.appendChild(head);
    var dl = document.createElement('dl');
    var rows = [
      ['歌曲编号 Song id', r.id],
      ['歌名 Title', r.title],
      ['时长 Duration', formatDuration(r.durationS) + ' (' + r.durationS + ' s)'],
      ['视频 Video', r.videoMode === 'remux' ? '直接封装 remux' : '重新编码 transcode'],
    ];
    if (typeof r.loudnessGainDb === 'number' && !r.existing) rows.push(['响度增益 Gain', r.loudnessGainDb.toFixed(1) + ' dB']);
    if (Array.isArray(r.notes) && r.notes.length) {
      var unique = r.notes.filter(function (n, i) { return r.notes.indexOf(n) === i; });
      rows.push(['备注 Notes', unique.join('; ')]);
    }
    rows.forEach(function (row, i) {
      var dt = document.createElement('dt');
      dt.textContent = row[0];
      var dd = document.createElement('dd');
      dd.textContent = String(row[1]);
      if (i === 0) dd.className = 'mono';
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    outcome.appendChild(dl);
  }

  function addRecent(title, ok, text, id) {
    var empty = recentRows.querySelector('tr.empty');
    if (empty) empty.remove();
    var tr = document.createElement('tr');
    var cells = [new Date().toLocaleTimeString(), title, text, id || ''];
    cells.forEach(function (value, i) {
      var td = document.createElement('td');
      td.textContent = value;
      if (i === 2) td.className = ok ? 'good' : 'bad';
      if (i === 3) td.className = 'id';
      tr.appendChild(td);
    });
    recentRows.insertBefore(tr, recentRows.firstChild);
  }

  /** Polls the job until stop() is called; a failed poll is only a missed frame. */
  function pollJob(jobId, token) {
    var stopped = false;
    var timer;
    function tick() {
      var xhr = new XMLHttpRequest();
      xhr.open('GET', '/api/v1/jobs/' + encodeURIComponent(jobId));
      xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      xhr.timeout = 5000;
      xhr.onloadend = function () {
        if (stopped) return;
        if (xhr.status === 200) {
          try {
            var job = JSON.parse(xhr.responseText);
            if (job.stage !== 'receiving') setStage(job.stage, job.fraction);
          } catch (e) { /* ignore a bad frame */ }
        }
        timer = setTimeout(tick, POLL_MS);
      };
      xhr.send();
    }
    tick();
    return function stop() {
      stopped = true;
      clearTimeout(timer);
    };
  }

  function field(name) {
    return form.elements[name].value.trim();
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var token = tokenInput.value.trim();
    var file = $('media').files[0];
    var title = field('title');
    var missing = [];
    if (!token) missing.push('管理口令 admin token');
    if (!file) missing.push('视频文件 video file');
    if (!title) missing.push('歌名 title');
    if (!field('artist')) missing.push('歌手 artist');
    if (missing.length) {
      showError('请填写 Please fill in: ' + missing.join(', '));
      return;
    }
    try { localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off */ }

    // Text fields first, the file last: the server sees the metadata before the big part.
    var data = new FormData();
    ['title', 'artist', 'language', 'genre', 'vocalTrack', 'backingTrack', 'vocalChannel'].forEach(function (name) {
      var value = field(name);
      if (value !== '') data.append(name, value);
    });
    data.append('media', file, file.name);

    var jobId = newJobId();
    var stopPoll = function () {};
    outcome.hidden = true;
    $('progress').hidden = false;
    setUpload(0);
    setStage('receiving', 0);
    submit.disabled = true;

    var xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/songs');
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('X-KTV-Job', jobId);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) setUpload(e.loaded / e.total);
    };
    xhr.upload.onload = function () {
      setUpload(1);
      setStage('queued');
      stopPoll = pollJob(jobId, token);
    };
    xhr.onloadend = function () {
      stopPoll();
      submit.disabled = false;
      var body;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = undefined; }
      if (xhr.status === 200 || xhr.status === 201) {
        setStage('done', 1);
        showResult(body);
        addRecent(title, true, body.existing ? '已存在 existing' : (body.videoMode === 'remux' ? '成功 remux' : '成功 transcode'), body.id);
        form.elements.media.value = '';
        return;
      }
      var message = xhr.status === 0
        ? '网络中断或服务器无响应 connection lost or no answer from the server'
        : (body && body.error ? body.error : 'HTTP ' + xhr.status);
      if (xhr.status === 401 || xhr.status === 403) message += ' — 请检查管理口令 check the admin token';
      setStage('failed', 0);
      showError(message + ' (HTTP ' + xhr.status + ')');
      addRecent(title, false, '失败 ' + xhr.status, '');
    };
    xhr.send(data);
  });

  // Show the language names in the recent list's hints (kept for operators who read codes).
  form.elements.language.title = Object.keys(LANGUAGE_NAMES).map(function (k) { return k + ' = ' + LANGUAGE_NAMES[k]; }).join(', ');
})();
