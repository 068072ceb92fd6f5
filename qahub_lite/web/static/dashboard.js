// qahub-lite dashboard: small enhancements only; every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Times in the reader's own time zone (the server writes UTC).
  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.title = d.toLocaleString();
    });
  }

  // A running run reloads itself; without JavaScript a <noscript> meta refresh does it.
  // Here the reload waits while the reader has unfolded something or is selecting text.
  function autoRefresh() {
    var holder = document.querySelector("[data-refresh]");
    if (!holder) return;
    var seconds = parseInt(holder.getAttribute("data-refresh"), 10) || 10;
    setInterval(function () {
      var reading = document.querySelector("details[open]") || String(window.getSelection() || "").length > 0;
      if (!reading && document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
  }

  // Forms that destroy something ask first.
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // The tenant menu switches on change; its button is for readers without JavaScript.
  function autoSubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  // "Copy" next to a secret shown once.
  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = document.getElementById(button.getAttribute("data-copy")).textContent;
        if (navigator.clipboard) {
          navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    autoRefresh();
    confirmations();
    autoSubmit();
    copyButtons();
  });
})();
