// The approve panel's quote countdown. The server says how many seconds the quote still holds
// (data-expires-in), so the person's clock does not matter. When it runs out, "Confirm &
// submit" is disabled and the expiry is said; "Get a fresh quote" stays. Without this script
// the panel still shows the expiry time and the server refuses an expired quote before the
// code is checked.
(function () {
  "use strict";

  function format(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires-in]").forEach(function (box) {
      if (!box.dataset.deadline) {
        box.dataset.deadline = String(now + Number(box.dataset.expiresIn) * 1000);
      }
      var left = Math.max(0, Math.ceil((Number(box.dataset.deadline) - now) / 1000));
      var countdown = box.querySelector("[data-countdown]");
      var value = box.querySelector("[data-countdown-value]");
      if (left > 0) {
        if (value) value.textContent = format(left);
        if (countdown) countdown.hidden = false;
        return;
      }
      if (countdown) countdown.hidden = true;
      var notice = box.querySelector("[data-expired-notice]");
      if (notice) notice.hidden = false;
      var form = box.querySelector("[data-approve-form]");
      if (form) {
        form.querySelectorAll("button, input").forEach(function (el) { el.disabled = true; });
        form.hidden = true;
      }
    });
  }

  tick();
  setInterval(tick, 1000);
  // A panel swapped in by htmx starts counting at once, not a second later.
  document.addEventListener("htmx:afterSwap", tick);
})();
