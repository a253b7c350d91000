/*
 * siyu.js — small glue between the server-rendered pages, htmx and the browser.
 * No dependencies; safe to load with `defer` before or after htmx.
 *
 *  1. CSRF: every htmx request carries the token from <meta name="csrf-token"> as
 *     the X-CSRF-Token header.
 *  2. Errors: a 4xx/5xx htmx response with Content-Type application/problem+json is not
 *     swapped; its `detail` is shown in the #toast element. Other failed htmx requests
 *     show #toast's data-error-text (network failures: data-network-text).
 *     A 422 text/html response IS swapped, so a form can re-render itself with inline
 *     field errors by answering 422.
 *  3. SMS countdown: an element with data-countdown="60" disables itself and counts down
 *     when the event `sms-sent` reaches it (dispatched on it, on an ancestor form, or sent
 *     with the response header `HX-Trigger: sms-sent`). Label while counting comes from
 *     data-countdown-text, where {n} is the seconds left (default "{n}s").
 *  4. Small helpers: [data-nav-toggle] opens/closes the console drawer (body.nav-open);
 *     [data-dialog-open="#id"] opens a <dialog> modally; [data-dialog-close] closes the
 *     enclosing dialog; clicking a dialog's backdrop closes it; a <dialog data-open-on-load>
 *     (a form re-rendered with its errors) opens as the page loads.
 *  window.siyu.toast(message, kind) is exposed for page scripts (kind: "error"|"success"|"info").
 */
(function () {
  "use strict";

  var PROBLEM = "application/problem+json";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  // ------------------------------------------------------------------ toast
  var toastTimer = null;

  function toast(message, kind) {
    var el = document.getElementById("toast");
    if (!el) {
      window.alert(message);
      return;
    }
    el.textContent = message;
    el.classList.remove("toast-error", "toast-success", "toast-info");
    el.classList.add("toast-" + (kind || "info"));
    el.classList.add("show");
    if (toastTimer) window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () {
      el.classList.remove("show");
    }, kind === "error" ? 5000 : 3000);
  }

  function toastText(name, fallback) {
    var el = document.getElementById("toast");
    return (el && el.getAttribute(name)) || fallback;
  }

  function isProblem(xhr) {
    var type = (xhr && xhr.getResponseHeader("Content-Type")) || "";
    return type.toLowerCase().indexOf(PROBLEM) !== -1;
  }

  function problemMessage(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && typeof body.detail === "string" && body.detail) return body.detail;
      if (body && typeof body.title === "string" && body.title) return body.title;
    } catch (e) {
      /* not JSON after all */
    }
    return toastText("data-error-text", "操作失败，请稍后重试");
  }

  // ------------------------------------------------------------------ htmx hooks
  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) evt.detail.headers["X-CSRF-Token"] = token;
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status < 400) return;
    if (isProblem(xhr)) {
      evt.detail.shouldSwap = false;
      xhr.siyuToastShown = true;
      toast(problemMessage(xhr), "error");
      return;
    }
    var type = (xhr.getResponseHeader("Content-Type") || "").toLowerCase();
    if (xhr.status === 422 && type.indexOf("text/html") !== -1) {
      // form re-rendered with field errors: show it
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.siyuToastShown) return;
    if (isProblem(xhr)) {
      toast(problemMessage(xhr), "error");
    } else {
      toast(toastText("data-error-text", "操作失败，请稍后重试"), "error");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    toast(toastText("data-network-text", "网络异常，请检查网络后重试"), "error");
  });

  // ------------------------------------------------------------------ SMS countdown
  function startCountdown(el) {
    if (el.siyuCountdown) return;
    var seconds = parseInt(el.getAttribute("data-countdown"), 10);
    if (!(seconds > 0)) seconds = 60;
    var template = el.getAttribute("data-countdown-text") || "{n}s";
    var original = el.innerHTML;
    var render = function () {
      el.textContent = template.replace("{n}", String(seconds));
    };
    el.disabled = true;
    el.setAttribute("aria-disabled", "true");
    render();
    el.siyuCountdown = window.setInterval(function () {
      seconds -= 1;
      if (seconds <= 0) {
        window.clearInterval(el.siyuCountdown);
        el.siyuCountdown = null;
        el.innerHTML = original;
        el.disabled = false;
        el.removeAttribute("aria-disabled");
        return;
      }
      render();
    }, 1000);
  }

  document.addEventListener("sms-sent", function (evt) {
    var target = evt.target;
    if (!target || !target.closest) return;
    var el = target.closest("[data-countdown]");
    if (!el && target.querySelectorAll) {
      el = target.querySelector("[data-countdown]");
      if (!el && target.form) el = target.form.querySelector("[data-countdown]");
    }
    if (el) startCountdown(el);
  });

  // ------------------------------------------------------------------ nav drawer, dialogs
  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (!t || !t.closest) return;

    var toggle = t.closest("[data-nav-toggle]");
    if (toggle) {
      var open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    if (t.closest("[data-nav-close]") ||
        (document.body.classList.contains("nav-open") && t.closest(".sidebar a"))) {
      document.body.classList.remove("nav-open");
      var btn = document.querySelector("[data-nav-toggle]");
      if (btn) btn.setAttribute("aria-expanded", "false");
    }

    var opener = t.closest("[data-dialog-open]");
    if (opener) {
      var dialog = document.querySelector(opener.getAttribute("data-dialog-open"));
      if (dialog && typeof dialog.showModal === "function") {
        evt.preventDefault();
        dialog.showModal();
      }
      return;
    }
    var closer = t.closest("[data-dialog-close]");
    if (closer) {
      var d = closer.closest("dialog");
      if (d) {
        evt.preventDefault();
        d.close();
      }
      return;
    }
    if (t.tagName === "DIALOG" && t.open) {
      // a click on the dialog element itself (not its content) is a click on the backdrop
      var r = t.getBoundingClientRect();
      var inside = evt.clientX >= r.left && evt.clientX <= r.right &&
                   evt.clientY >= r.top && evt.clientY <= r.bottom;
      if (!inside) t.close();
    }
  });

  function openOnLoad() {
    var d = document.querySelector("dialog[data-open-on-load]");
    if (d && !d.open && typeof d.showModal === "function") d.showModal();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", openOnLoad);
  } else {
    openOnLoad();
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && document.body.classList.contains("nav-open")) {
      document.body.classList.remove("nav-open");
      var btn = document.querySelector("[data-nav-toggle]");
      if (btn) btn.setAttribute("aria-expanded", "false");
    }
  });

  // close the user menu (<details>) when clicking elsewhere
  document.addEventListener("click", function (evt) {
    var menus = document.querySelectorAll("details.user-menu[open]");
    for (var i = 0; i < menus.length; i++) {
      if (!menus[i].contains(evt.target)) menus[i].removeAttribute("open");
    }
  });

  window.siyu = { toast: toast, csrfToken: csrfToken, startCountdown: startCountdown };
})();
