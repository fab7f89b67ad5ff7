// reconcile UI: live updates. The server sends a `change` event (server-sent events) when
// what the pages show has changed; the page's <main> is fetched again and swapped in place.
// Actions that change the target ask first, in a modal <dialog> (keyboard: Tab between
// Cancel and the action, Enter chooses, Escape cancels; focus starts on Cancel).
// Without JavaScript every page is a plain HTML page, and actions are plain form POSTs.
(function () {
  "use strict";
  var dialog = document.getElementById("confirm");
  var asking = null;
  var returnTo = "";
  if (dialog && dialog.showModal) {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.hasAttribute || !form.hasAttribute("data-confirm") || form.dataset.confirmed) {
        return;
      }
      event.preventDefault();
      asking = form;
      returnTo = document.activeElement && document.activeElement.id;
      document.getElementById("confirm-text").textContent = form.getAttribute("data-confirm");
      document.getElementById("confirm-ok").textContent =
        form.getAttribute("data-confirm-action") || "Confirm";
      dialog.returnValue = "";
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
    dialog.addEventListener("close", function () {
      var form = asking;
      asking = null;
      // A live update may have replaced the control that opened the dialog while it was
      // open: the browser then returns focus to <body>; give it back to the new control.
      var back = returnTo && document.getElementById(returnTo);
      returnTo = "";
      if (back && document.activeElement !== back && dialog.returnValue !== "ok") {
        back.focus({ preventScroll: true });
      }
      if (form && dialog.returnValue === "ok") {
        form.dataset.confirmed = "yes";
        form.submit();
      } else if (again && !busy) {
        again = false;
        setTimeout(refresh, 250);
      }
    });
  }
  if (!window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var live = document.getElementById("live");
  var busy = false;
  var again = false;
  var updates = 0;

  function say(text) {
    if (live) {
      live.textContent = text;
    }
  }

  // Replacing <main> while someone types in it would lose their input: wait for them.
  function editing() {
    if (dialog && dialog.open) {
      return true;
    }
    var el = document.activeElement;
    return !!el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }

  function openDetails(main) {
    var open = {};
    main.querySelectorAll("details").forEach(function (d, i) {
      open[i] = d.open;
    });
    return open;
  }

  function refresh() {
    if (busy || editing()) {
      again = true;
      return;
    }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        var main = document.getElementById("content");
        if (!fresh || !main) {
          return;
        }
        // The user started editing or opened a dialog while the page was fetched: later.
        if (editing()) {
          again = true;
          return;
        }
        var open = openDetails(main);
        // Keep a keyboard user's place: the focused control comes back focused.
        var focused = main.contains(document.activeElement) ? document.activeElement.id : "";
        main.innerHTML = fresh.innerHTML;
        var refocus = focused && document.getElementById(focused);
        if (refocus) {
          refocus.focus({ preventScroll: true });
        }
        main.querySelectorAll("details").forEach(function (d, i) {
          if (i in open) {
            d.open = open[i];
          }
        });
        updates += 1;
        document.body.setAttribute("data-updates", String(updates));
        say("live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say("live · update failed (" + error.message + ")");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          setTimeout(refresh, 250);
        }
      });
  }

  document.addEventListener("focusout", function () {
    if (again && !busy) {
      again = false;
      setTimeout(refresh, 250);
    }
  });

  var source = new EventSource("/ui/events");
  source.addEventListener("hello", function () {
    document.body.setAttribute("data-live", "on");
    say("live");
  });
  source.addEventListener("change", refresh);
  source.onerror = function () {
    say("live updates paused (reconnecting)");
  };
})();
