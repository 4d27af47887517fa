// pumpd-board: live updates of the server-rendered tiles, the alarm flashing, countdowns,
// the STALE / DISCONNECTED overlay and the optional alarm tone. No dependencies, loaded
// from the board itself (the Content-Security-Policy allows nothing else).
"use strict";

(function () {
  const HIGH_PERIOD_MS = 500; // 2 Hz, 50 % duty (IEC 60601-1-8: 1.4-2.8 Hz, 20-60 %)
  const MEDIUM_PERIOD_MS = 1667; // 0.6 Hz, 50 % duty (0.4-0.8 Hz)
  const TICK_MS = 50;
  const TONE_REPEAT_MS = 10000; // a high-priority burst repeats while a high alarm stands
  const REOPEN_MS = 5000;

  const body = document.body;
  const root = document.documentElement;
  const zone = body.dataset.zone || "UTC";
  const staleAfterS = Number(body.dataset.staleAfterS || "3");
  const clockFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const zoneFmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, timeZoneName: "short" });

  const state = {
    lastDataAt: null, // this page's clock (ms) when the shown data was fresh at pumpd
    receivedAt: Date.now(), // this page's clock when the shown tiles arrived
    linkDown: false,
    problem: "",
    streamDown: false,
    tones: 0,
    lastToneAt: null,
    audio: null,
  };

  function duration(seconds) {
    const s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + sec : m + ":" + sec;
  }

  function ago(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function zoneName(date) {
    const part = zoneFmt.formatToParts(date).find((p) => p.type === "timeZoneName");
    return part ? part.value : zone;
  }

  function localTime(ms) {
    const d = new Date(ms);
    return clockFmt.format(d) + " " + zoneName(d);
  }

  // -- data -------------------------------------------------------------------------

  function adoptBoard(fresh, now) {
    const board = document.getElementById("board");
    const ageMs = fresh.dataset.ageMs === "" ? null : Number(fresh.dataset.ageMs);
    if (board) {
      // Replace only the tiles that changed; new or vanished chairs redraw the grid.
      const oldIds = Array.from(board.children).map((e) => e.id).join(" ");
      const newIds = Array.from(fresh.children).map((e) => e.id).join(" ");
      if (oldIds === newIds) {
        Array.from(fresh.children).forEach((tile, i) => {
          const old = board.children[i];
          if (old.outerHTML !== tile.outerHTML) old.replaceWith(tile.cloneNode(true));
        });
        for (const key of ["link", "ageMs", "problem", "seq"]) {
          board.dataset[key] = fresh.dataset[key];
        }
      } else {
        board.replaceWith(fresh);
      }
    }
    state.linkDown = fresh.dataset.link !== "ok";
    state.problem = fresh.dataset.problem || "";
    state.receivedAt = now;
    if (ageMs !== null) state.lastDataAt = now - ageMs;
    tick();
  }

  function parseBoard(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    return tpl.content.getElementById("board");
  }

  function open() {
    const es = new EventSource("/events");
    es.addEventListener("board", (ev) => {
      state.streamDown = false;
      const fresh = parseBoard(ev.data);
      if (fresh) adoptBoard(fresh, Date.now());
    });
    es.addEventListener("link", (ev) => {
      state.streamDown = false;
      const link = JSON.parse(ev.data);
      state.linkDown = link.link !== "ok";
      state.problem = link.problem || "";
      tick();
    });
    es.onopen = () => { state.streamDown = false; tick(); };
    es.onerror = () => {
      state.streamDown = true;
      tick();
      if (es.readyState === EventSource.CLOSED) {
        // refused (e.g. too many screens): the browser does not retry by itself
        setTimeout(open, REOPEN_MS);
      }
    };
  }

  // -- every tick -------------------------------------------------------------------

  function renderCountdowns(now) {
    const elapsedS = (now - state.receivedAt) / 1000;
    for (const el of document.querySelectorAll(".countdown")) {
      const left = Number(el.dataset.remainingS) - elapsedS;
      let text;
      if (left >= 0) text = duration(left);
      else if (el.dataset.past === "overdue") text = "overdue " + duration(-left);
      else text = el.dataset.past;
      if (el.textContent !== text) el.textContent = text;
      const dd = el.closest("dd");
      if (dd && el.dataset.kind === "vitals") dd.classList.toggle("overdue", left < 0);
    }
  }

  function renderFlash(now) {
    const high = now % HIGH_PERIOD_MS < HIGH_PERIOD_MS / 2 ? "on" : "off";
    const medium = now % MEDIUM_PERIOD_MS < MEDIUM_PERIOD_MS / 2 ? "on" : "off";
    if (root.dataset.flashHigh !== high) root.dataset.flashHigh = high;
    if (root.dataset.flashMedium !== medium) root.dataset.flashMedium = medium;
  }

  function renderOverlay(now) {
    const overlay = document.getElementById("overlay");
    const age = state.lastDataAt === null ? null : (now - state.lastDataAt) / 1000;
    let title = null;
    let detail = "";
    if (state.streamDown) {
      title = "DISCONNECTED";
      detail = "The board server does not answer.";
    } else if (state.linkDown) {
      title = "DISCONNECTED";
      detail = "pumpd does not answer" + (state.problem ? ": " + state.problem : "") + ".";
    } else if (age === null || age > staleAfterS) {
      title = "STALE";
      detail = "No update from pumpd.";
    }
    if (title === null) {
      if (!overlay.hidden) overlay.hidden = true;
      body.classList.remove("stale");
      return;
    }
    const when = age === null
      ? " No data yet."
      : " Last update " + ago(age) + " ago, at " + localTime(state.lastDataAt) + ".";
    document.getElementById("overlay-title").textContent = title;
    document.getElementById("overlay-detail").textContent = detail + when;
    overlay.hidden = false;
    body.classList.add("stale");
  }

  function renderClock(now) {
    const el = document.getElementById("clock");
    const text = clockFmt.format(new Date(now)) + " " + zoneName(new Date(now));
    if (el.textContent !== text) el.textContent = text;
  }

  // -- the tone ---------------------------------------------------------------------

  function beep(ctx, at, freq) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.17);
  }

  function burst(now) {
    // A high-priority burst in the manner of IEC 60601-1-8: 3 + 2 pulses.
    const ctx = state.audio;
    const t = ctx.currentTime + 0.02;
    [0, 0.2, 0.4, 1.0, 1.2].forEach((dt) => beep(ctx, t + dt, 880));
    state.tones += 1;
    state.lastToneAt = now;
    const button = document.getElementById("tone");
    button.dataset.bursts = String(state.tones);
  }

  function renderTone(now) {
    if (!state.audio || state.audio.state !== "running") return;
    const high = document.querySelector(".tile.alarm-high") !== null && !state.streamDown;
    if (!high) { state.lastToneAt = null; return; }
    if (state.lastToneAt === null || now - state.lastToneAt >= TONE_REPEAT_MS) burst(now);
  }

  function setUpTone() {
    if (body.dataset.alarmTone !== "on") return;
    const button = document.getElementById("tone");
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    button.hidden = false;
    button.dataset.bursts = "0";
    const show = () => {
      const on = state.audio && state.audio.state === "running";
      button.textContent = on ? "Alarm tone on" : "Alarm tone off: click to enable";
      button.classList.toggle("on", Boolean(on));
    };
    button.addEventListener("click", () => {
      if (!state.audio) state.audio = new Ctx();
      state.audio.resume().then(show);
    });
    // A kiosk browser started with an autoplay policy that allows it needs no click.
    state.audio = new Ctx();
    state.audio.onstatechange = show;
    show();
  }

  function tick() {
    const now = Date.now();
    renderFlash(now);
    renderCountdowns(now);
    renderOverlay(now);
    renderClock(now);
    renderTone(now);
  }

  const initial = document.getElementById("board");
  if (initial) {
    const ageMs = initial.dataset.ageMs === "" ? null : Number(initial.dataset.ageMs);
    state.linkDown = initial.dataset.link !== "ok";
    state.problem = initial.dataset.problem || "";
    if (ageMs !== null) state.lastDataAt = Date.now() - ageMs;
  }
  setUpTone();
  tick();
  setInterval(tick, TICK_MS);
  open();
})();
