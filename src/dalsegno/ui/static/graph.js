/* The execution page's graphs: pan and zoom (Panzoom, vendored), fit to the screen, go to
   the failed tasks one after the other, open and close groups, select a task, and apply
   the live states the page's fragment carries, in place.

   The server draws every graph as SVG and a refresh never replaces it (hx-preserve): the
   fragment htmx swaps in every 1.5 s carries a JSON block of states (#live-state), which
   this script applies to the boxes already drawn. So the viewport and the selection stay
   where the person left them. Viewports are kept per graph in sessionStorage, so a reload
   or a click on the task table's pager keeps them too.

   No inline script or handler anywhere: everything is bound from here (CSP: scripts from
   this site only). */
(function () {
  "use strict";

  const MIN_SCALE = 0.02;
  const MAX_SCALE = 4;
  const READABLE = 1; // the scale a task is shown at when the page goes to it
  const views = new Map(); // graph name -> {section, svg, viewport, panzoom}
  let expand = [];
  let signature = "";
  let selected = null; // task id (a string)
  let statesSeen = {};
  const cursor = { failed: -1, matches: -1 };
  let pointerAt = null;

  const byId = (id) => document.getElementById(id);
  const execution = () => byId("execution");
  const executionId = () => execution() && execution().dataset.execution;
  const key = (suffix) => "dalsegno:" + executionId() + ":" + suffix;

  function remember(name, value) {
    try {
      sessionStorage.setItem(key(name), JSON.stringify(value));
    } catch (error) {
      /* private mode, quota: the viewport is only not kept across reloads */
    }
  }

  function recall(name) {
    try {
      return JSON.parse(sessionStorage.getItem(key(name)) || "null");
    } catch (error) {
      return null;
    }
  }

  /* viewports ------------------------------------------------------------------------ */

  function size(view) {
    const box = view.svg.getBoundingClientRect();
    return { width: box.width || 800, height: box.height || 400 };
  }

  function show(view, scale, x, y) {
    view.panzoom.zoom(scale, { animate: false, force: true });
    view.panzoom.pan(x, y, { animate: false, force: true });
    save(view);
  }

  function save(view) {
    const pan = view.panzoom.getPan();
    remember("view:" + view.name, { scale: view.panzoom.getScale(), x: pan.x, y: pan.y });
  }

  function fit(view) {
    const screen = size(view);
    const width = Number(view.section.dataset.width);
    const height = Number(view.section.dataset.height);
    const scale = Math.max(MIN_SCALE, Math.min(1, (0.96 * screen.width) / width,
      (0.96 * screen.height) / height));
    show(view, scale, (screen.width / scale - width) / 2, (screen.height / scale - height) / 2);
  }

  function centre(view, x, y, width, height, scale) {
    const screen = size(view);
    show(view, scale, screen.width / (2 * scale) - (x + width / 2),
      screen.height / (2 * scale) - (y + height / 2));
  }

  function zoomBy(view, factor) {
    const screen = size(view);
    const scale = view.panzoom.getScale();
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale * factor));
    const pan = view.panzoom.getPan();
    // keep the middle of the screen where it is
    const middleX = screen.width / (2 * scale) - pan.x;
    const middleY = screen.height / (2 * scale) - pan.y;
    show(view, next, screen.width / (2 * next) - middleX, screen.height / (2 * next) - middleY);
  }

  function setUp(section) {
    const svg = section.querySelector("svg.graph");
    const viewport = svg && svg.querySelector("g.viewport");
    if (!viewport) {
      return;
    }
    const name = section.dataset.graph;
    const kept = recall("view:" + name);
    const panzoom = window.Panzoom(viewport, {
      canvas: true,
      animate: false,
      minScale: MIN_SCALE,
      maxScale: MAX_SCALE,
      cursor: "grab",
      startScale: kept ? kept.scale : 1,
      startX: kept ? kept.x : 0,
      startY: kept ? kept.y : 0,
    });
    const view = { name, section, svg, viewport, panzoom };
    views.set(name, view);
    svg.addEventListener("wheel", (event) => {
      panzoom.zoomWithWheel(event);
      save(view);
    }, { passive: false });
    viewport.addEventListener("panzoomend", () => save(view));
    section.querySelectorAll("[data-zoom]").forEach((button) => {
      button.addEventListener("click", () => {
        const how = button.dataset.zoom;
        if (how === "fit") {
          fit(view);
        } else {
          zoomBy(view, how === "in" ? 1.25 : 0.8);
        }
      });
    });
    if (!kept) {
      const width = Number(section.dataset.width);
      const height = Number(section.dataset.height);
      const screen = size(view);
      if (width > screen.width || height > screen.height) {
        settled(() => fit(view));
      }
    }
  }

  // Panzoom applies its start position in a timeout of its own: act after it.
  function settled(action) {
    return new Promise((resolve) => {
      setTimeout(() => resolve(action()), 0);
    });
  }

  function setUpAll() {
    views.clear();
    const graphs = byId("graphs");
    if (!graphs) {
      return;
    }
    graphs.querySelectorAll("section.graph-view").forEach(setUp);
    const bar = graphs.querySelector(".graph-bar");
    signature = bar ? bar.dataset.signature : "";
    const state = graphs.querySelector("script.graphs-state");
    if (state) {
      apply(JSON.parse(state.textContent));
    }
    if (selected) {
      select(selected);
    }
  }

  /* live states ----------------------------------------------------------------------- */

  function swapState(element, prefix, state) {
    for (const name of Array.from(element.classList)) {
      if (name.startsWith(prefix)) {
        element.classList.remove(name);
      }
    }
    element.classList.add(prefix + state);
  }

  function describe(total, counts) {
    let text = total + " tasks";
    if (counts.failed) {
      text += " · " + counts.failed + " failed";
    }
    const running = (counts.started || 0) + (counts.sent || 0);
    if (running) {
      text += " · " + running + " running";
    }
    return text;
  }

  function applyGroup(group, found) {
    swapState(group, "s-", found.worst);
    const total = Number(group.dataset.total);
    const counts = group.querySelector(".group-counts");
    if (counts) {
      counts.textContent = describe(total, found.counts);
    }
    const note = group.querySelector(".group-note");
    if (note && found.note) {
      note.textContent = "· " + found.note;
    }
    let x = Number(group.dataset.x) + 10;
    group.querySelectorAll("rect.bar").forEach((bar) => {
      const width = total ? (190 * (found.counts[bar.dataset.state] || 0)) / total : 0;
      bar.setAttribute("x", x.toFixed(1));
      bar.setAttribute("width", width.toFixed(1));
      x += width;
    });
  }

  function apply(state) {
    if (!state) {
      return;
    }
    const graphs = byId("graphs");
    if (!graphs) {
      return;
    }
    if (state.signature !== signature) {
      redraw(); // a graph appeared: draw them all again, the viewports kept
      return;
    }
    graphs.querySelectorAll("g.node").forEach((node) => {
      const now = state.tasks[node.dataset.task];
      if (now && now !== node.dataset.status) {
        node.dataset.status = now;
        swapState(node, "s-", now);
        const title = node.querySelector("title");
        if (title) {
          title.textContent = node.dataset.key + ": " + now;
        }
      }
    });
    graphs.querySelectorAll("path.arrow[data-from]").forEach((arrow) => {
      const now = state.tasks[arrow.dataset.from];
      if (now) {
        swapState(arrow, "a-", now);
      }
    });
    graphs.querySelectorAll("g.group").forEach((group) => {
      const found = state.groups[group.dataset.graph + "/" + group.dataset.group];
      if (found) {
        applyGroup(group, found);
      }
    });
    graphs.querySelectorAll("g.subgraph").forEach((box) => {
      const found = (state.subgraphs || {})[box.dataset.graph + "/" + box.dataset.subgraph];
      if (found) {
        swapState(box, "s-", found.state);
        box.classList.toggle("ignored", Boolean(found.ignored));
        const text = box.querySelector(".subgraph-label");
        if (text && text.textContent !== found.text) {
          text.textContent = found.text;
        }
      }
    });
    const button = byId("goto-failed");
    if (button) {
      button.hidden = state.failed.length === 0;
      button.querySelector(".count").textContent = "(" + state.failed.length + ")";
      button.dataset.targets = JSON.stringify(state.failed);
    }
    const matches = byId("goto-match");
    if (matches) {
      matches.dataset.targets = JSON.stringify(state.matches);
    }
    if (selected && statesSeen[selected] && state.tasks[selected] &&
        state.tasks[selected] !== statesSeen[selected]) {
      select(selected); // its state changed: read it again
    }
    statesSeen = state.tasks;
  }

  /* drawing again (a group opened or closed, a graph appeared) ------------------------ */

  function pageQuery() {
    const query = new URLSearchParams(window.location.search);
    query.delete("expand");
    expand.forEach((value) => query.append("expand", value));
    return query;
  }

  function redraw() {
    const query = pageQuery();
    const search = query.toString();
    history.replaceState(null, "", window.location.pathname + (search ? "?" + search : "") +
      window.location.hash);
    syncFilterForm();
    const url = "/fragments/executions/" + executionId() + "/graphs?" + query;
    return fetch(url, { credentials: "same-origin" }).then((answer) => {
      if (!answer.ok) {
        throw new Error("HTTP " + answer.status);
      }
      return answer.text();
    }).then((html) => {
      byId("graphs").innerHTML = html;
      setUpAll();
      return settled(() => {
        const root = document.documentElement;
        root.dataset.redraws = String(Number(root.dataset.redraws || 0) + 1);
      });
    });
  }

  function syncFilterForm() {
    const form = byId("task-filters");
    if (!form) {
      return;
    }
    form.querySelectorAll("input[name=expand]").forEach((input) => input.remove());
    expand.forEach((value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "expand";
      input.value = value;
      form.appendChild(input);
    });
  }

  function toggleGroup(graph, group) {
    const value = graph + "/" + group;
    const opening = !expand.includes(value);
    expand = opening ? expand.concat([value]) : expand.filter((item) => item !== value);
    return redraw().then(() => {
      const view = views.get(graph);
      const frame = view && view.svg.querySelector('g.group[data-group="' + CSS.escape(group) + '"]');
      if (frame && opening) {
        const d = frame.dataset;
        const scale = Math.min(READABLE, view.panzoom.getScale() * 2);
        centre(view, Number(d.x), Number(d.y), Math.min(Number(d.w), 600),
          Math.min(Number(d.h), 400), Math.max(scale, 0.5));
      }
    });
  }

  /* going to a task --------------------------------------------------------------------- */

  function nodeOf(taskId) {
    return document.querySelector('#graphs g.node[data-task="' + CSS.escape(String(taskId)) + '"]');
  }

  function goTo(target, retried) {
    const node = nodeOf(target.id);
    if (node) {
      const view = views.get(target.graph);
      if (view) {
        centre(view, Number(node.dataset.x), Number(node.dataset.y), 170, 30,
          Math.max(view.panzoom.getScale(), READABLE));
        view.section.scrollIntoView({ block: "nearest" });
      }
      select(String(target.id));
      return;
    }
    if (target.group && !retried) {
      const value = target.graph + "/" + target.group;
      if (!expand.includes(value)) {
        expand = expand.concat([value]);
      }
      redraw().then(() => goTo(target, true));
    }
  }

  function next(button, which) {
    const targets = JSON.parse(button.dataset.targets || "[]");
    if (!targets.length) {
      return;
    }
    cursor[which] = (cursor[which] + 1) % targets.length;
    button.title = (cursor[which] + 1) + " of " + targets.length + ": " + targets[cursor[which]].key;
    goTo(targets[cursor[which]], false);
  }

  /* selection --------------------------------------------------------------------------- */

  function select(taskId) {
    document.querySelectorAll("#graphs g.node.selected").forEach((node) => {
      node.classList.remove("selected");
    });
    selected = taskId;
    remember("selected", taskId);
    const node = nodeOf(taskId);
    if (node) {
      node.classList.add("selected");
    }
    const panel = byId("selection");
    if (!panel) {
      return;
    }
    const url = "/fragments/executions/" + executionId() + "/tasks/" + encodeURIComponent(taskId);
    fetch(url, { credentials: "same-origin" }).then((answer) => {
      return answer.ok ? answer.text() : null;
    }).then((html) => {
      if (html !== null && selected === taskId) {
        panel.innerHTML = html;
        panel.hidden = false;
      }
    });
  }

  function unselect() {
    selected = null;
    remember("selected", null);
    document.querySelectorAll("#graphs g.node.selected").forEach((node) => {
      node.classList.remove("selected");
    });
    const panel = byId("selection");
    if (panel) {
      panel.hidden = true;
      panel.innerHTML = "";
    }
  }

  /* events ------------------------------------------------------------------------------ */

  function onClick(event) {
    const graphs = byId("graphs");
    if (!graphs || !graphs.contains(event.target)) {
      return;
    }
    if (event.target.closest("[data-close-selection]")) {
      unselect();
      return;
    }
    const failed = event.target.closest("#goto-failed");
    if (failed) {
      event.preventDefault();
      next(failed, "failed");
      return;
    }
    const match = event.target.closest("#goto-match");
    if (match) {
      next(match, "matches");
      return;
    }
    const link = event.target.closest("svg.graph a");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
      return; // a new tab: the link works as a link
    }
    event.preventDefault();
    if (pointerAt && Math.hypot(event.clientX - pointerAt.x, event.clientY - pointerAt.y) > 4) {
      return; // the end of a drag, not a click
    }
    const node = link.querySelector("g.node");
    if (node) {
      select(node.dataset.task);
      return;
    }
    const group = link.querySelector("g.group");
    if (group) {
      toggleGroup(group.dataset.graph, group.dataset.group);
    }
  }

  function start() {
    if (!execution() || !byId("graphs")) {
      return;
    }
    const query = new URLSearchParams(window.location.search);
    expand = query.getAll("expand");
    selected = recall("selected");
    setUpAll();
    const live = byId("live-state");
    if (live) {
      apply(JSON.parse(live.textContent));
    }
    document.addEventListener("pointerdown", (event) => {
      pointerAt = { x: event.clientX, y: event.clientY };
    }, true);
    document.addEventListener("click", onClick);
    // Each refresh asks for the groups open now, and brings the states to apply.
    document.body.addEventListener("htmx:configRequest", (event) => {
      if (event.detail.elt && event.detail.elt.id === "execution") {
        event.detail.parameters.expand = expand;
      }
    });
    document.body.addEventListener("htmx:afterSettle", () => {
      const state = byId("live-state");
      if (state) {
        apply(JSON.parse(state.textContent));
      }
    });
    const match = byId("goto-match");
    if (match && query.get("q")) {
      next(match, "matches");
    }
    settled(() => {
      document.documentElement.dataset.graphs = "ready"; // benchmarks/ui_render.py waits for it
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
