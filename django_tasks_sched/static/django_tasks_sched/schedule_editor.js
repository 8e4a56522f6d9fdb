/* The Task form's schedule editor: structured inputs beside the trigger_config JSON, both kept
   in step, and a live preview (words, fire times, the form's errors) from the admin's preview
   endpoint. Without JavaScript none of this exists and the JSON box is the editor. */
(function () {
    "use strict";

    var script = document.currentScript;
    var PREVIEW_URL = script.dataset.previewUrl;
    var OBJECT_ID = script.dataset.objectId;
    var DEBOUNCE_MS = 300;
    // Cron's fields and its crontab string exclude each other: filling one group clears the other.
    var GROUPS = {crontab: ["crontab"], fields: ["year", "month", "day", "week", "day_of_week", "hour", "minute", "second"]};
    var LOCAL_DATETIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/;

    function start() {
        var form = document.getElementById("task_form");
        var json = document.getElementById("id_trigger_config");
        var trigger = document.getElementById("id_trigger");
        var template = document.getElementById("dts-schedule-editor");
        // A declared task's schedule is read-only, and a view-only page has no inputs.
        if (!form || !json || !trigger || !template || json.tagName !== "TEXTAREA") {
            return;
        }
        var editor = template.content.firstElementChild.cloneNode(true);
        json.closest(".form-row").before(editor);
        var inputs = Array.prototype.slice.call(editor.querySelectorAll("[data-key]"));
        var invalidNote = editor.querySelector(".dts-editor-json-invalid");

        function readJson() {
            var text = json.value.trim();
            if (!text) {
                return {};
            }
            try {
                var value = JSON.parse(text);
                return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
            } catch (error) {
                return null;
            }
        }

        function currentPart() {
            return editor.querySelector('.dts-editor-part[data-trigger="' + trigger.value + '"]');
        }

        function showPart() {
            var part = currentPart();
            editor.querySelectorAll(".dts-editor-part").forEach(function (each) {
                each.hidden = each !== part;
            });
            editor.querySelector(".dts-editor-no-trigger").hidden = Boolean(part);
        }

        // JSON -> inputs. A value an input cannot show (a date with an offset) leaves it empty;
        // the key stays in the JSON as long as that input is not edited.
        function fillInputs() {
            var config = readJson();
            invalidNote.hidden = config !== null;
            if (config === null) {
                return;
            }
            inputs.forEach(function (input) {
                var value = config[input.dataset.key];
                if (value === undefined || value === null || typeof value === "object") {
                    input.value = "";
                } else if (input.type === "datetime-local") {
                    input.value = LOCAL_DATETIME.test(String(value)) ? String(value) : "";
                } else {
                    input.value = String(value);
                }
            });
        }

        // One input -> its key in the JSON; every other key is kept as it is.
        function writeKey(input) {
            var config = readJson();
            if (config === null) {
                invalidNote.hidden = false;
                return;
            }
            var key = input.dataset.key;
            var value = input.value.trim();
            if (value === "") {
                delete config[key];
            } else if (input.dataset.type === "number" && /^-?\d+(\.\d+)?$/.test(value)) {
                config[key] = Number(value);
            } else {
                config[key] = value;
            }
            var group = input.dataset.group;
            if (group && value !== "") {
                var other = group === "crontab" ? GROUPS.fields : GROUPS.crontab;
                other.forEach(function (name) {
                    delete config[name];
                });
                currentPart().querySelectorAll("[data-group]").forEach(function (each) {
                    if (each.dataset.group !== group) {
                        each.value = "";
                    }
                });
            }
            json.value = JSON.stringify(config);
            invalidNote.hidden = true;
        }

        // The presets write a crontab string.
        var preset = editor.querySelector("#dts-cron-preset");
        function showPresetParams() {
            editor.querySelectorAll("[data-preset-param]").forEach(function (span) {
                span.hidden = span.dataset.presetParam.split(" ").indexOf(preset.value) === -1;
            });
        }
        function presetCrontab() {
            var time = (editor.querySelector("#dts-cron-time").value || "00:00").split(":");
            var hour = Number(time[0]);
            var minute = Number(time[1]);
            switch (preset.value) {
            case "every":
                return "*/" + Number(editor.querySelector("#dts-cron-every").value || 1) + " * * * *";
            case "hourly":
                return Number(editor.querySelector("#dts-cron-minute").value || 0) + " * * * *";
            case "daily":
                return minute + " " + hour + " * * *";
            case "weekdays":
                return minute + " " + hour + " * * mon-fri";
            default:
                return minute + " " + hour + " " + Number(editor.querySelector("#dts-cron-day").value || 1) + " * *";
            }
        }
        preset.addEventListener("change", showPresetParams);
        editor.querySelector(".dts-cron-apply").addEventListener("click", function () {
            var crontab = editor.querySelector("#dts-cron-crontab");
            crontab.value = presetCrontab();
            writeKey(crontab);
            touched.trigger_config = true;
            schedulePreview();
        });

        // -- the preview ------------------------------------------------------------------
        var timer = null;
        var latest = 0;
        var controller = null;
        // On the add page a field's errors show once it was touched, not while it is still
        // blank; a change page, or a page the server sent back with errors, shows them all.
        var showAll = Boolean(OBJECT_ID) || Boolean(document.querySelector(".errornote"));
        var touched = {trigger_config: false};

        function schedulePreview() {
            clearTimeout(timer);
            timer = setTimeout(preview, DEBOUNCE_MS);
        }

        function preview() {
            var body = new URLSearchParams(new FormData(form));
            body.set("_dts_object_id", OBJECT_ID);
            var sequence = ++latest;
            if (controller) {
                controller.abort();
            }
            controller = new AbortController();
            fetch(PREVIEW_URL, {
                method: "POST",
                body: body,
                credentials: "same-origin",
                headers: {"X-Requested-With": "XMLHttpRequest"},
                signal: controller.signal
            }).then(function (response) {
                return response.json();
            }).then(function (answer) {
                if (sequence === latest) {
                    showPreview(answer);
                }
            }).catch(function (error) {
                if (error.name !== "AbortError" && sequence === latest) {
                    editor.querySelector(".dts-preview-failed").hidden = false;
                }
            });
        }

        function labelOf(name) {
            var label = document.querySelector('label[for="id_' + name + '"]');
            return label ? label.textContent.replace(/:\s*$/, "") : name;
        }

        function showPreview(answer) {
            editor.querySelector(".dts-preview-failed").hidden = true;
            editor.querySelector(".dts-preview-words").textContent = answer.description || "";
            var times = answer.fire_times || [];
            var table = editor.querySelector(".dts-preview-times");
            var rows = table.querySelector("tbody");
            rows.replaceChildren();
            times.forEach(function (fire) {
                var row = rows.insertRow();
                row.insertCell().textContent = fire.task_zone;
                row.insertCell().textContent = fire.site_zone;
            });
            table.hidden = times.length === 0;
            editor.querySelector(".dts-preview-none").hidden = Boolean(times.length || !answer.description);
            // The errors: a summary in the live region, and each under its own field.
            var errors = answer.errors || {};
            var summary = editor.querySelector(".dts-preview-errors");
            summary.replaceChildren();
            form.querySelectorAll(".form-row > ul.errorlist").forEach(function (list) {
                list.remove();  // the server's, from the last save: the answer replaces them
            });
            Object.keys(errors).forEach(function (name) {
                if (!showAll && name !== "__all__" && !touched[name]) {
                    return;
                }
                errors[name].forEach(function (message) {
                    var item = document.createElement("li");
                    item.textContent = name === "__all__" ? message : labelOf(name) + ": " + message;
                    summary.append(item);
                });
                var row = form.querySelector(".form-row.field-" + name);
                if (row) {
                    var list = document.createElement("ul");
                    list.className = "errorlist";
                    errors[name].forEach(function (message) {
                        var item = document.createElement("li");
                        item.textContent = message;
                        list.append(item);
                    });
                    row.prepend(list);
                }
            });
        }

        // -- wiring -----------------------------------------------------------------------
        editor.addEventListener("input", function (event) {
            if (event.target.dataset && event.target.dataset.key) {
                writeKey(event.target);
            }
        });
        json.addEventListener("input", fillInputs);
        trigger.addEventListener("change", showPart);
        function onEdit(event) {
            var target = event.target;
            touched[target.name || (editor.contains(target) ? "trigger_config" : "")] = true;
            schedulePreview();
        }
        form.addEventListener("input", onEdit);
        form.addEventListener("change", onEdit);

        showPart();
        showPresetParams();
        fillInputs();
        preview();
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
