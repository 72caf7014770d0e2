/* The interview wizard's progressive enhancements; every page works without them.
 *
 * Autosave: a form marked `data-autosave` is sent in the background (the same fields, with the header
 * `X-Autosave: 1`) every 20 seconds and when the page is hidden or left, if it changed since it was last saved.
 * The server answers 204 with the draft's new revision in `X-Revision`, which goes into the form's hidden
 * `revision` field so that the next save (automatic or not) is not taken for a stale page.
 *
 * Place filter: a select marked `data-place-filter` gets a search field that hides the places none of whose
 * names (in any language or spelling, from the options' `data-names`) contain what is typed.
 */
(function () {
  "use strict";

  var INTERVAL_MS = 20000;

  function twoDigits(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function fold(text) {
    return (text || "").toLocaleLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }

  function setUpAutosave(form) {
    var status = document.getElementById(form.getAttribute("data-autosave-status"));
    var revision = form.querySelector("input[name='revision']");
    var submitting = false;
    var busy = false;

    // What the person wrote, without the revision (which changes with every save).
    function content() {
      var data = new FormData(form);
      data.delete("revision");
      return new URLSearchParams(data).toString();
    }

    var saved = content();

    function say(text) {
      if (status && text) {
        status.textContent = text;
      }
    }

    function save(leaving) {
      if (submitting || busy) {
        return;
      }
      var sent = content();
      if (sent === saved) {
        return;
      }
      busy = true;
      // The attribute, not `form.action`: a control named "action" (the pause button) would shadow that.
      fetch(form.getAttribute("action"), {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "X-Autosave": "1" },
        credentials: "same-origin",
        redirect: "manual",
        keepalive: leaving === true && sent.length < 60000
      }).then(function (response) {
        if (response.status === 204) {
          var next = response.headers.get("X-Revision");
          if (next && revision) {
            revision.value = next;
          }
          saved = sent;
          var now = new Date();
          say((form.getAttribute("data-saved-text") || "").replace("{time}",
            twoDigits(now.getHours()) + ":" + twoDigits(now.getMinutes())));
        } else if (response.status === 409) {
          say(form.getAttribute("data-stale-text"));
        } else {
          say(form.getAttribute("data-failed-text"));
        }
      }).catch(function () {
        say(form.getAttribute("data-failed-text"));
      }).then(function () {
        busy = false;
      });
    }

    form.addEventListener("submit", function () {
      submitting = true;
    });
    window.setInterval(save, INTERVAL_MS);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        save(true);
      }
    });
    window.addEventListener("pagehide", function () {
      save(true);
    });
  }

  function setUpPlaceFilter(select) {
    var input = document.createElement("input");
    var label = document.createElement("label");
    input.type = "search";
    input.id = select.id + "-filter";
    input.className = "place-filter";
    input.setAttribute("autocomplete", "off");
    input.setAttribute("aria-controls", select.id);
    label.htmlFor = input.id;
    label.textContent = select.getAttribute("data-filter-label") || "";
    select.parentNode.insertBefore(label, select);
    select.parentNode.insertBefore(input, select);
    var options = Array.prototype.slice.call(select.options);
    input.addEventListener("input", function () {
      var wanted = fold(input.value.trim());
      options.forEach(function (option) {
        if (!option.value) {
          return;
        }
        var names = fold(option.getAttribute("data-names") + "|" + option.textContent);
        var shown = !wanted || names.indexOf(wanted) !== -1;
        option.hidden = !shown;
        option.disabled = !shown && !option.selected;
      });
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-autosave]"), setUpAutosave);
    Array.prototype.forEach.call(document.querySelectorAll("select[data-place-filter]"), setUpPlaceFilter);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
