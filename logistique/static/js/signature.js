/* logistique — signature pad of the handover page (templates/slips/handover.html). No library.

   <div data-signature-pad> holds a <canvas data-signature-canvas>, an « Effacer » button
   (data-signature-clear) and an error line (data-signature-error); its form has a hidden input
   name="signature". Strokes are drawn with pointer events (finger, stylus, mouse; CSS touch-action: none
   keeps the page from scrolling under the finger), kept as points so that a rotation or a resize redraws
   them. On submit the drawing becomes a PNG data URL (dark ink on white) in the hidden field; an empty
   pad, or no device ticked, stops the submission with a message (the server refuses both too). */
(function () {
  "use strict";

  var INK = "#161616";
  var EXPORT_WIDTH = 800; // PNG width whatever the screen: stable size, well under the server's 512 KB

  document.querySelectorAll("[data-signature-pad]").forEach(function (pad) {
    var canvas = pad.querySelector("[data-signature-canvas]");
    var form = pad.closest("form");
    var field = form && form.querySelector('input[name="signature"]');
    if (!canvas || !field || !canvas.getContext) return;

    var ctx = canvas.getContext("2d");
    var strokes = []; // [[{x, y}, …], …] in CSS pixels
    var current = null;
    var error = pad.querySelector("[data-signature-error]");
    var state = pad.querySelector("[data-signature-state]");
    field.value = "";

    function lineWidth() {
      return Math.max(2, Math.min(4, canvas.clientWidth / 160));
    }

    function resize() {
      var ratio = window.devicePixelRatio || 1;
      var width = canvas.clientWidth;
      var height = canvas.clientHeight;
      if (!width || !height) return;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      redraw(ctx, 1);
    }

    function style(context, scale) {
      context.strokeStyle = INK;
      context.fillStyle = INK;
      context.lineWidth = lineWidth() * scale;
      context.lineCap = "round";
      context.lineJoin = "round";
    }

    function drawStroke(context, points, scale) {
      if (!points.length) return;
      if (points.length === 1) {
        context.beginPath();
        context.arc(points[0].x * scale, points[0].y * scale, (lineWidth() * scale) / 2, 0, 2 * Math.PI);
        context.fill();
        return;
      }
      context.beginPath();
      context.moveTo(points[0].x * scale, points[0].y * scale);
      for (var i = 1; i < points.length; i += 1) {
        context.lineTo(points[i].x * scale, points[i].y * scale);
      }
      context.stroke();
    }

    function redraw(context, scale) {
      context.clearRect(0, 0, canvas.width, canvas.height);
      style(context, scale);
      strokes.forEach(function (points) {
        drawStroke(context, points, scale);
      });
    }

    function point(event) {
      var rect = canvas.getBoundingClientRect();
      return { x: event.clientX - rect.left, y: event.clientY - rect.top };
    }

    function setSigned(signed) {
      pad.setAttribute("data-signed", signed ? "true" : "false");
      if (state) state.textContent = signed ? "Signé." : "Pas encore signé.";
      if (signed && error) {
        error.hidden = true;
        pad.classList.remove("field-error");
      }
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== undefined && event.button > 0) return;
      event.preventDefault();
      if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
      current = [point(event)];
      strokes.push(current);
      style(ctx, 1);
      drawStroke(ctx, current, 1);
    });

    canvas.addEventListener("pointermove", function (event) {
      if (!current) return;
      event.preventDefault();
      var events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      if (!events.length) events = [event];
      var last = current[current.length - 1];
      style(ctx, 1);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      events.forEach(function (e) {
        var p = point(e);
        current.push(p);
        ctx.lineTo(p.x, p.y);
      });
      ctx.stroke();
    });

    function end(event) {
      if (!current) return;
      if (canvas.releasePointerCapture && canvas.hasPointerCapture && canvas.hasPointerCapture(event.pointerId)) {
        canvas.releasePointerCapture(event.pointerId);
      }
      current = null;
      setSigned(true);
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);

    var clear = pad.querySelector("[data-signature-clear]");
    if (clear) {
      clear.addEventListener("click", function () {
        strokes = [];
        current = null;
        field.value = "";
        redraw(ctx, 1);
        setSigned(false);
        canvas.focus();
      });
    }

    function isEmpty() {
      return !strokes.some(function (points) {
        return points.length > 0;
      });
    }

    function toPng() {
      var scale = EXPORT_WIDTH / canvas.clientWidth;
      var out = document.createElement("canvas");
      out.width = EXPORT_WIDTH;
      out.height = Math.max(20, Math.round(canvas.clientHeight * scale));
      var octx = out.getContext("2d");
      octx.fillStyle = "#ffffff";
      octx.fillRect(0, 0, out.width, out.height);
      style(octx, scale);
      strokes.forEach(function (points) {
        drawStroke(octx, points, scale);
      });
      return out.toDataURL("image/png");
    }

    form.addEventListener("submit", function (event) {
      var devices = form.querySelectorAll('input[type="checkbox"][name="serial"]');
      var ticked = form.querySelectorAll('input[type="checkbox"][name="serial"]:checked');
      var devicesError = form.querySelector("[data-devices-error]");
      if (devices.length && !ticked.length) {
        event.preventDefault();
        if (devicesError) devicesError.hidden = false;
        devices[0].focus();
        return;
      }
      if (devicesError) devicesError.hidden = true;
      if (isEmpty()) {
        event.preventDefault();
        field.value = "";
        if (error) {
          error.textContent = "La signature est obligatoire : faites signer la personne qui reçoit l’équipement.";
          error.hidden = false;
        }
        pad.classList.add("field-error");
        canvas.focus();
        canvas.scrollIntoView({ block: "center" });
        return;
      }
      field.value = toPng();
    });

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(resize, 100);
    });
    resize();
    setSigned(false);
  });
})();
