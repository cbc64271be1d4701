// Vuoro web chat widget. Embed with:
//   <script src="https://chat.example/chat/widget.js" data-tenant="acme"></script>
// It renders into an element with id "vuoro-chat" when the page has one, else into a floating
// panel. Plain JavaScript, no framework, no build step. The conversation (id, resume token,
// transcript) is kept in sessionStorage, so a reload resumes it.
(function () {
  'use strict';

  var script = document.currentScript;
  var base = new URL('.', script.src);
  var tenant = script.getAttribute('data-tenant') ||
    new URLSearchParams(window.location.search).get('tenant') || '';
  var storageKey = 'vuoro-chat:' + base.host + ':' + tenant;
  var socketUrl = (base.protocol === 'https:' ? 'wss://' : 'ws://') + base.host + base.pathname + 'ws';

  // ----- state kept across reloads ---------------------------------------------------------
  function load() {
    try {
      return JSON.parse(window.sessionStorage.getItem(storageKey)) || fresh();
    } catch (e) {
      return fresh();
    }
  }
  function fresh() {
    return { conversation: null, token: null, transcript: [], shown: [], status: '',
      completed: false, rated: false, thanks: '' };
  }
  function save() {
    window.sessionStorage.setItem(storageKey, JSON.stringify(state));
  }
  var state = load();

  // ----- the page ----------------------------------------------------------------------------
  if (!document.querySelector('link[data-vuoro-chat]')) {
    var css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = new URL('widget.css', base).href;
    css.setAttribute('data-vuoro-chat', '');
    document.head.appendChild(css);
  }
  var root = document.getElementById('vuoro-chat');
  if (!root) {
    root = document.createElement('div');
    root.className = 'vuoro-floating';
    document.body.appendChild(root);
  }
  root.classList.add('vuoro-chat');
  root.setAttribute('role', 'region');
  root.setAttribute('aria-label', 'Chat with us');
  root.innerHTML =
    '<h2>Chat with us</h2>' +
    '<form class="vuoro-start">' +
    '  <label for="vuoro-name">Your name</label>' +
    '  <input id="vuoro-name" name="name" autocomplete="name" maxlength="200">' +
    '  <label for="vuoro-language">Language</label>' +
    '  <select id="vuoro-language" name="language">' +
    '    <option value="">Automatic</option><option value="en">English</option>' +
    '    <option value="fi">Suomi</option><option value="sv">Svenska</option>' +
    '  </select>' +
    '  <label for="vuoro-first">How can we help?</label>' +
    '  <textarea id="vuoro-first" name="text" rows="3" required maxlength="4096"></textarea>' +
    '  <button type="submit">Start chat</button>' +
    '</form>' +
    '<div class="vuoro-status" role="status" aria-live="polite"></div>' +
    '<ol class="vuoro-transcript" role="log" aria-live="polite" aria-label="Conversation"></ol>' +
    '<form class="vuoro-send" hidden>' +
    '  <label for="vuoro-message">Message</label>' +
    '  <input id="vuoro-message" name="message" autocomplete="off" maxlength="4096">' +
    '  <button type="submit">Send</button>' +
    '</form>' +
    '<div class="vuoro-rating" hidden>' +
    '  <fieldset><legend>How was this conversation? Rate it 1–5</legend>' +
    [1, 2, 3, 4, 5].map(function (n) {
      return '<button type="button" data-score="' + n + '" aria-label="Rate ' + n + ' of 5">' + n + '</button>';
    }).join('') +
    '  </fieldset>' +
    '</div>' +
    '<p class="vuoro-thanks" hidden></p>' +
    '<p class="vuoro-error" role="alert"></p>';

  var startForm = root.querySelector('.vuoro-start');
  var sendForm = root.querySelector('.vuoro-send');
  var statusLine = root.querySelector('.vuoro-status');
  var transcript = root.querySelector('.vuoro-transcript');
  var rating = root.querySelector('.vuoro-rating');
  var thanks = root.querySelector('.vuoro-thanks');
  var errorLine = root.querySelector('.vuoro-error');

  function render() {
    var started = !!state.conversation;
    startForm.hidden = started;
    sendForm.hidden = !started || state.completed;
    rating.hidden = !state.completed || state.rated;
    thanks.hidden = !state.rated;
    thanks.textContent = state.thanks;
    statusLine.textContent = state.completed ? '' : state.status;
    transcript.textContent = '';
    state.transcript.forEach(function (entry) {
      var item = document.createElement('li');
      item.className = 'vuoro-' + entry.who;
      item.textContent = (entry.who === 'customer' ? 'You: ' : entry.who === 'agent' ? 'Agent: ' : '') + entry.text;
      transcript.appendChild(item);
    });
    transcript.scrollTop = transcript.scrollHeight;
  }

  function add(who, text, id) {
    if (id) {
      if (state.shown.indexOf(id) >= 0) return false;
      state.shown.push(id);
    }
    state.transcript.push({ who: who, text: text });
    return true;
  }

  // ----- the connection ----------------------------------------------------------------------
  var socket = null;
  var pending = [];
  var retryMs = 500;

  function connect() {
    socket = new WebSocket(socketUrl);
    socket.onopen = function () {
      retryMs = 500;
      if (state.conversation) {
        socket.send(JSON.stringify({ type: 'resume', tenant: tenant,
          conversation: state.conversation, token: state.token }));
      }
      pending.splice(0).forEach(function (frame) { socket.send(frame); });
    };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      receive(message);
      save();
      render();
    };
    socket.onclose = function () {
      socket = null;
      // Reconnect while a conversation is open; a new one connects when it starts.
      if (state.conversation && !state.rated) {
        window.setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 10000);
      }
    };
  }

  function send(frame) {
    var text = JSON.stringify(frame);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(text);
    } else {
      pending.push(text);
      if (!socket) connect();
    }
  }

  function receive(message) {
    switch (message.type) {
      case 'started':
        state.conversation = message.conversation;
        state.token = message.token;
        errorLine.textContent = '';
        break;
      case 'resumed':
        errorLine.textContent = '';
        break;
      case 'queued':
        if (state.shown.indexOf(message.id) < 0) {
          state.shown.push(message.id);
          state.status = message.text;
        }
        break;
      case 'agent_joined':
        if (add('system', message.text, message.id)) state.status = message.text;
        break;
      case 'reply':
        add('agent', message.text, message.id);
        break;
      case 'notice':
        add('system', message.text, message.id);
        break;
      case 'completed':
        if (add('system', message.text, message.id)) state.completed = true;
        break;
      case 'rated':
        state.rated = true;
        state.thanks = message.text;
        if (socket) socket.close(1000, 'rated');
        break;
      case 'sent':
        break;
      case 'error':
        errorLine.textContent = message.field + ': ' + message.reason;
        // A start that was refused: the form comes back, the transcript starts again.
        if (!state.conversation) state.transcript = [];
        if (message.code === 'bad_token' || message.code === 'origin_not_allowed') {
          state = fresh();
        }
        break;
    }
  }

  startForm.addEventListener('submit', function (event) {
    event.preventDefault();
    var text = startForm.elements.text.value.trim();
    if (!text) return;
    var frame = { type: 'start', tenant: tenant, text: text };
    var name = startForm.elements.name.value.trim();
    var language = startForm.elements.language.value;
    if (name) frame.name = name;
    if (language) frame.language = language;
    add('customer', text);
    save();
    render();
    send(frame);
  });

  sendForm.addEventListener('submit', function (event) {
    event.preventDefault();
    var input = sendForm.elements.message;
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    add('customer', text);
    save();
    render();
    send({ type: 'message', text: text });
  });

  rating.addEventListener('click', function (event) {
    var score = event.target.getAttribute && event.target.getAttribute('data-score');
    if (score) send({ type: 'rating', score: Number(score) });
  });

  render();
  if (state.conversation && !state.rated) connect();
})();
