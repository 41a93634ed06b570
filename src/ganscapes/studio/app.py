"""The studio's web page: Gradio components wired to `Studio`'s actions.

Nothing here computes: every button calls one method of `Studio` through `Handlers`, and a
request that fails becomes a line on the page: a refused one (a `UserError`) says why, and
leaves no traceback in the server's log. The page's values reach the handlers as the
browser sent them (`preprocess=False`): Gradio's own checks of a number's range would
answer with an error box and a traceback instead, and the studio checks every value itself.
One job runs at a time; others wait in a short queue, so a second browser tab cannot
exhaust memory. The server answers only its own page, with bounded requests (`guard`).
"""

import math
import os
import sys
import traceback
from pathlib import Path

from ganscapes.clip.prompts import DEFAULT_PROMPT
from ganscapes.errors import UserError, first_line
from ganscapes.make.mix import DEFAULT_LAYERS
from ganscapes.studio.core import (
    MAX_DISTANCE,
    MAX_FINISH_WIDTH,
    MAX_GUIDE_STEPS,
    MAX_NEIGHBOURS,
    MAX_PROJECT_STEPS,
    MAX_TOP,
    MAX_UPLOAD_BYTES,
    MAX_WALK_FRAMES,
    PROJECT_STEPS,
    SEED_GRID,
    SLIDER_SIGMA,
    STUDIO_LAYER_CHOICES,
    Studio,
)
from ganscapes.studio.guard import LOOPBACK_NAMES, RequestGuard

QUEUE_SIZE = 8  # waiting jobs beyond this are refused
MAX_MESSAGE_CHARS = 400  # of a sentence on the page


def quiet_environment() -> None:
    """No telemetry, no update checks, no server-side rendering (which would need Node)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")


def _fail(e: Exception) -> str:
    return f"**Could not do that:** {_plain(str(e))}"


def _plain(text: str) -> str:
    """`text` shown as it is in a Markdown field: a value echoed from a request may hold Markdown
    (an image from another site, a link), which the page must not render."""
    text = text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
    return "".join("\\" + c if c in MARKDOWN_CHARACTERS else c for c in text)


# CommonMark lets a backslash escape any ASCII punctuation (spec section 2.4, "Backslash escapes").
MARKDOWN_CHARACTERS = frozenset("\\`*_{}[]()<>#+-.!|~&")


def _whole_seed(value):
    """A seed from the page's field, for a grid that starts there: the studio checks the range of each."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 40:
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value == int(value):
        return int(value)
    raise UserError(f"Enter a seed as a whole number, not {str(value)[:40]!r}.")


def _as_text(value) -> str:
    return value if isinstance(value, str) else ""


KEEP = "keep"  # an output left as it is; the page passes Gradio's own "no change" (gr.skip()) instead


class Handlers:
    """The page's events as plain methods, called as Gradio calls them: each returns what its
    outputs show, and never raises; a failure is the last output, a sentence for the page, and
    every other output is `keep`, so the pictures shown before a refused request stay shown."""

    def __init__(self, studio: Studio, keep=KEEP, inbox: Path | None = None):
        self.studio = studio
        self.keep = keep
        self.inbox = inbox  # where Gradio stores uploads: the only files "Project it" reads

    def failure(self, e: Exception) -> str:
        if isinstance(e, UserError):
            return _fail(e)
        traceback.print_exc(file=sys.stderr)  # a bug, not the user's mistake: its traceback helps fix it
        return f"**Something went wrong:** {_plain(first_line(e))}. The studio's log has the details."

    def show(self, entries):
        return [(str(self.studio.path_of(e)), e.caption) for e in entries], [e.id for e in entries]

    def prompt(self, text, count, psi_value, keep, progress=None):
        try:
            entries = self.studio.paint_prompt(text, count, psi_value, keep, progress=progress)
            pics, numbers = self.show(entries)
            best = f"best score {entries[0].score:+.4f}"
            status = f"The {len(entries)} best of {int(float(count))} for “{_plain(text)}”: {best}."
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return pics, numbers, status

    def seed(self, value, psi_value):
        try:
            entry = self.studio.paint_seed(value, psi_value)
            pics, numbers = self.show([entry])
            status = f"Seed {entry.seed}, ψ {float(psi_value):g}: picture #{entry.id}."
        except Exception as e:
            return self.keep, self.keep, self.keep, self.failure(e)
        return pics, numbers, [entry.seed], status

    def random(self, psi_value):
        value = self.studio.random_seed()
        return (value, *self.seed(value, psi_value))

    def seed_grid(self, start, psi_value):
        """SEED_GRID pictures from seed `start` on; the seeds shown go to the page, for ψ to repaint."""
        try:
            first = int(_whole_seed(start))
            seeds = list(range(first, first + SEED_GRID))
        except Exception as e:
            return self.keep, self.keep, self.keep, self.failure(e)
        return self.repaint(seeds, psi_value)

    def random_grid(self, psi_value):
        value = self.studio.random_seed()
        return (value, *self.seed_grid(value, psi_value))

    def repaint(self, seeds, psi_value):
        """The seeds shown, painted again at ψ: the slider's live repaint."""
        if not seeds:
            return self.keep, self.keep, self.keep, "Paint a seed or a grid; moving ψ then paints it again."
        try:
            entries = self.studio.paint_seeds(seeds, psi_value)
            pics, numbers = self.show(entries)
            shown = [e.seed for e in entries]
            span = f"Seed {shown[0]}" if len(shown) == 1 else f"Seeds {shown[0]}–{shown[-1]}"
            status = f"{span}, ψ {float(psi_value):g}: pictures #{entries[0].id}–#{entries[-1].id}."
            if len(entries) == 1:
                status = f"Seed {shown[0]}, ψ {float(psi_value):g}: picture #{entries[0].id}."
        except Exception as e:
            return self.keep, self.keep, self.keep, self.failure(e)
        return pics, numbers, shown, status

    def mix(self, form_text, style_text, preset, custom_text, psi_value):
        try:
            grid_path, entries = self.studio.mix(form_text, style_text, preset, custom_text, psi_value)
            pics, numbers = self.show(entries)
            status = f"{len(entries)} cells, pictures #{entries[0].id}–#{entries[-1].id}."
        except Exception as e:
            return self.keep, self.keep, self.keep, self.failure(e)
        return str(grid_path), pics, numbers, status

    def guide(self, start, text, how, count, progress=None):
        try:
            entry, plot = self.studio.guide(start, text, how, count, progress=progress)
            pics, numbers = self.show([entry])
            status = f"Best score {entry.score:+.4f}: picture #{entry.id}."
        except Exception as e:
            return self.keep, self.keep, self.keep, self.failure(e)
        return pics, numbers, str(plot), status

    def finish(self, source, lo, hi, ratio, px):
        try:
            entry = self.studio.finish(source, lo, hi, ratio, px)
            path = str(self.studio.path_of(entry))
            status = f"Picture #{entry.id}; the PNG carries its recipe (`ganscapes info` shows it)."
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return path, path, status

    def walk(self, keys, frames, loop, psi_value):
        """The walk's MP4 twice (the player, the download) and a sentence."""
        try:
            video, count = self.studio.walk(keys, frames, loop, psi_value)
            status = (
                f"{count} frames through {_plain(_as_text(keys).strip())}; the MP4 carries its recipe "
                "(`ganscapes reproduce WALK.mp4 --frame N` rebuilds a frame)."
            )
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return str(video), str(video), status

    @staticmethod
    def walk_keys(numbers) -> str:
        """The catalog numbers of the pictures a gallery shows, as the Keyframes field takes them."""
        return ", ".join(f"#{n}" for n in numbers or [] if isinstance(n, int))

    def edit(self, start, *amounts):
        """The selected picture and its edit, side by side; the sliders' release runs it."""
        if start is None or (isinstance(start, str) and not start.strip()):
            return self.keep, self.keep, "Select a picture and press “Edit it”; the sliders then repaint it."
        try:
            original = self.studio.entry(start)
            entry = self.studio.edit(start, list(amounts))
            if entry.id == original.id:
                pics, numbers = self.show([original])
                status = f"Every slider at 0: picture #{original.id} as it is."
            else:
                pics, numbers = self.show([original, entry])
                status = f"Picture #{entry.id}: {_plain(entry.note)}."
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return pics, numbers, status

    def near(self, start, distance, count):
        """The picture and its neighbours, the picture first."""
        if start is None or (isinstance(start, str) and not start.strip()):
            return self.keep, self.keep, "Select a picture and press “More like this”, or type its number."
        try:
            original = self.studio.entry(start)
            entries = self.studio.more_like(start, distance, count)
            pics, numbers = self.show([original, *entries])
            status = (
                f"{len(entries)} pictures near #{original.id}, at {float(distance):g} of W's spread: "
                f"#{entries[0].id}–#{entries[-1].id}."
            )
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return pics, numbers, status

    def project(self, upload, steps_w, steps_wplus, progress=None):
        """The target as the model sees it and the projected picture (a catalog picture), and a sentence."""
        path = upload.get("path") if isinstance(upload, dict) else upload
        try:
            if self.inbox is None:
                raise UserError("This page takes no uploads.")
            entry, target, psnr = self.studio.project_upload(path, steps_w, steps_wplus, self.inbox, progress)
            pics = [
                (str(target), "the painting, as the model sees it"),
                (str(self.studio.path_of(entry)), entry.caption),
            ]
            status = f"Picture #{entry.id}, {psnr:.1f} dB PSNR from your painting; it can be mixed, edited and walked."
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return pics, [None, entry.id], status

    def search(self, text):
        try:
            pics, numbers = self.show(self.studio.find(text))
            shown = _as_text(text).strip()
            status = f"{len(pics)} picture(s)" + (f" for “{_plain(shown)}”" if shown else "") + "."
        except Exception as e:
            return self.keep, self.keep, self.failure(e)
        return pics, numbers, status

    def about(self, chosen, prompt):
        """The side panel for the selected picture: its facts in Markdown, and the command that rebuilds it."""
        if not _as_text(chosen).strip():
            return "Click a picture in any gallery to see its recipe here.", ""
        try:
            facts = self.studio.about(chosen, prompt)
        except Exception as e:
            return self.failure(e), ""
        e = facts.entry
        lines = [f"**Picture #{e.id}** ({_plain(e.kind)}) · from {_plain(facts.parents)}"]
        if facts.score is not None:
            lines.append(f"**Score** {facts.score:+.4f} for “{_plain(facts.prompt)}”")
        elif facts.score_note:
            lines.append(f"**No score:** {_plain(facts.score_note)}")
        if facts.why_not:
            lines.append(f"No command rebuilds it: {_plain(facts.why_not)}.")
        recipe = "\n".join(f"- {_plain(what)}: {_plain(value)}" for what, value in facts.rows)
        command = next((line for what, line in facts.commands if what.startswith("rebuild")), "")
        return "\n\n".join([*lines, recipe]), command

    @staticmethod
    def select(numbers, index) -> str:
        """The catalog number of the picture clicked in a gallery (`index`, as the browser sent it)."""
        ok = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(numbers or [])
        return f"#{numbers[index]}" if ok and numbers[index] is not None else ""  # None: a picture not cataloged

    @staticmethod
    def append(current, chosen) -> str:
        """`chosen` added to a comma-separated list; the page runs the same rule in the browser (APPEND_JS)."""
        current, chosen = _as_text(current), _as_text(chosen)
        return chosen if not current.strip() else f"{current}, {chosen}" if chosen else current


# How the page draws pictures. GAN pictures are small (a 64² model's are 64 pixels wide), and a browser
# scaling one to fit a box blurs it, crops it (Gradio's gallery draws a lone picture as wide as the
# page, in a box of fixed height) or draws some pixels wider than others. So every picture is drawn
# whole, at n× or 1/n× its size: gallery cells as large as fits TILE pixels, a single picture as large
# as fits its column and PICTURE_HEIGHT; pixels stay squares ("image-rendering: pixelated", CSS Images
# Module Level 3). The script sets each picture's size when it loads; the CSS lets the boxes around
# it follow that size instead of cutting it, keeps the gallery's label above the first picture instead of on it,
# squares the corners Gradio rounds, and lets captions wrap instead of ending in "…".
TILE = 192
PICTURE_HEIGHT = 560
CSS = f"""
.studio-pictures .grid-wrap {{ max-height: none !important; min-height: 0 !important; height: auto !important;
  padding-top: 28px !important;
  overflow: visible !important; }}
.studio-pictures .grid-container {{ display: flex !important; flex-wrap: wrap; gap: var(--spacing-lg);
  align-items: flex-start; }}
.studio-pictures .gallery-item {{ flex: 0 0 auto; width: auto !important; height: auto !important; }}
.studio-pictures .thumbnail-item {{ width: auto !important; height: auto !important; aspect-ratio: auto !important;
  display: flex; flex-direction: column; align-items: center; overflow: visible !important; padding: 4px; }}
.studio-pictures img, .studio-picture img, .studio-picture video {{ image-rendering: pixelated;
  border-radius: 0 !important; object-fit: fill !important; max-width: none !important; max-height: none !important;
  min-width: 16px; min-height: 16px; }}
.studio-pictures .caption-label {{ position: static !important; max-width: {TILE}px !important;
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  opacity: 1 !important; border: none !important;
  background: none !important; margin-top: 4px; }}
.studio-picture .image-frame, .studio-picture .image-container, .studio-picture button {{ height: auto !important;
  max-height: none !important; overflow: visible !important; }}
.studio-picture .image-frame {{ padding: 36px 0 8px; }}
.studio-status p {{ margin: 0; }}
"""
HEAD = f"""<script>
(() => {{
  const fit = img => {{
    const holder = img.closest('.studio-pictures, .studio-picture');
    const nw = img.naturalWidth || img.videoWidth, nh = img.naturalHeight || img.videoHeight;
    if (!holder || !nw) return;
    const tile = holder.classList.contains('studio-pictures');
    // a cell: TILE, or half the gallery's width on a phone; a single picture: its column's width
    const room = holder.clientWidth;
    const w = tile ? Math.min({TILE}, Math.max(64, (room - 48) / 2)) : Math.max(32, room - 24);
    const h = tile ? w : {PICTURE_HEIGHT};
    let k = Math.floor(Math.min(w / nw, h / nh));
    if (k < 1) k = 1 / Math.ceil(Math.max(nw / w, nh / h));
    const width = nw * k + 'px', height = nh * k + 'px';
    if (img.style.width !== width) img.style.width = width;
    if (img.style.height !== height) img.style.height = height;
  }};
  // a picture that loads in a hidden tab is fitted again when its tab is shown and its box gets a size
  const resized = new ResizeObserver(
    entries => entries.forEach(e => e.target.querySelectorAll('img, video').forEach(fit)));
  const watched = new WeakSet();
  const all = () => {{
    document.querySelectorAll('.studio-picture').forEach(holder => {{
      if (!watched.has(holder)) {{ watched.add(holder); resized.observe(holder); }}
      holder.querySelectorAll('img, video').forEach(fit);
    }});
    document.querySelectorAll('.studio-pictures img').forEach(fit);
  }};
  document.addEventListener('load', e => {{ if (e.target.tagName === 'IMG') fit(e.target); }}, true);
  document.addEventListener('loadedmetadata', e => {{ if (e.target.tagName === 'VIDEO') fit(e.target); }}, true);
  // A slider repaints when let go (Gradio's "release", sent on pointerup); one moved with the keyboard is let
  // go when its key is: the same event then (HTML's range input takes arrows, Home, End, Page Up and Down).
  const keys = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'];
  document.addEventListener('keyup', e => {{
    const t = e.target;
    if (t instanceof HTMLInputElement && t.type === 'range' && keys.includes(e.key))
      t.dispatchEvent(new PointerEvent('pointerup', {{bubbles: true}}));
  }}, true);
  new MutationObserver(all).observe(document.documentElement,
    {{subtree: true, childList: true, attributes: true, attributeFilter: ['src']}});
  window.addEventListener('resize', all);
}})();
</script>"""
APPEND_JS = "(current, chosen) => !chosen ? current : (current && current.trim() ? `${current}, ${chosen}` : chosen)"
# Words for the keys Gradio's status announcer reads out that its own translations lack (it read "common.complete").
TRANSLATIONS = {"common.complete": "Done"}


def build_app(studio: Studio):
    quiet_environment()
    import gradio as gr

    clip_note = studio.clip_status()
    model = studio.model
    gallery_opts = {
        "columns": 6,
        "format": "png",
        "height": "auto",
        "object_fit": "none",
        "allow_preview": False,  # a preview would draw the picture scaled to the page; the cells show it whole
        "elem_classes": ["studio-pictures"],
    }
    status_opts = {"elem_classes": ["studio-status"]}

    with gr.Blocks(title="ganscapes studio", analytics_enabled=False) as app:
        gr.Markdown(
            f"# ganscapes studio\nModel `{Path(studio.cfg.model).name}` ({model.resolution}², hash "
            f"`{model.model_hash[:12]}`) on {studio.device}. Every picture is kept in the catalog with its recipe."
        )
        # catalog numbers of each gallery's pictures, in order: a click on a gallery that is not the
        # one filled last must still select its own picture
        names = ("prompt", "seed", "near", "mix", "edit", "guide", "project", "catalog")
        ids = {name: gr.State([]) for name in names}
        with gr.Row(equal_height=False):
            # The side panel: the selected picture, what to do with it, what it is and how to make it again.
            with gr.Column(scale=1, min_width=300, elem_id="side"):
                selected = gr.Textbox(label="Selected picture", interactive=False, elem_id="selected")
                with gr.Row():
                    use_form = gr.Button("Add to forms", size="sm", min_width=80)
                    use_style = gr.Button("Add to styles", size="sm", min_width=80)
                with gr.Row():
                    use_walk = gr.Button("Add to walk", size="sm", min_width=80)
                    use_near = gr.Button("More like this", size="sm", min_width=80)
                with gr.Row():
                    use_edit = gr.Button("Edit it", size="sm", min_width=80)
                    use_guide = gr.Button("Guide from it", size="sm", min_width=80)
                    use_finish = gr.Button("Finish it", size="sm", min_width=80)
                about = gr.Markdown("Click a picture in any gallery to see its recipe here.", elem_id="about")
                command = gr.Textbox(label="Command that rebuilds it", interactive=False, lines=2, elem_id="command")
                copy_command = gr.Button("Copy command", size="sm")
            with gr.Column(scale=4, min_width=360):
                # The tabs other than the first keep their fields in the page before they are first opened
                # (render_children): the buttons above write into them from any tab.
                with gr.Tabs(overflow_behavior="wrap") as tabs:  # on a phone every tab stays in sight
                    with gr.Tab("Paint from a prompt", id="prompt"):
                        prompt = gr.Textbox(
                            label="Prompt", value=DEFAULT_PROMPT, elem_id="prompt", interactive=clip_note is None
                        )
                        gr.Markdown(
                            f"**CLIP is not available.** {clip_note}" if clip_note else "", visible=bool(clip_note)
                        )
                        with gr.Row():
                            n = gr.Number(
                                label="Pictures to generate",
                                value=studio.default_images,
                                precision=0,
                                minimum=1,
                                maximum=studio.max_images,
                                elem_id="count",
                            )
                            psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="ψ (truncation)")
                            top = gr.Number(
                                label="Keep the best", value=6, precision=0, minimum=1, maximum=MAX_TOP, elem_id="top"
                            )
                        paint = gr.Button("Paint from the prompt", variant="primary", interactive=clip_note is None)
                        prompt_status = gr.Markdown(elem_id="prompt-status", **status_opts)
                        gallery = gr.Gallery(label="Best matches", elem_id="prompt-gallery", **gallery_opts)

                    with gr.Tab("Explore by seed", id="seed", render_children=True):
                        with gr.Row():
                            seed = gr.Number(label="Seed", value=0, precision=0, elem_id="seed")
                            seed_psi = gr.Slider(
                                0, 1.5, value=0.7, step=0.05, label="ψ (truncation)", elem_id="seed-psi"
                            )
                        with gr.Row():
                            paint_seed = gr.Button("Paint this seed", variant="primary")
                            paint_grid = gr.Button(f"Seed grid ({SEED_GRID} from this seed)", variant="primary")
                            random_seed = gr.Button("Random seed")
                            random_grid = gr.Button("Random grid")
                        shown_seeds = gr.State([])  # what the ψ slider repaints
                        seed_status = gr.Markdown(elem_id="seed-status", **status_opts)
                        seed_gallery = gr.Gallery(label="Painting", elem_id="seed-gallery", **gallery_opts)

                    with gr.Tab("More like this", id="near", render_children=True):
                        gr.Markdown(
                            "Neighbours of a picture: its latent moved a distance along random directions (1 is "
                            "W's spread, the typical distance of a random latent from the average one)."
                        )
                        with gr.Row():
                            near_from = gr.Textbox(label="Picture", elem_id="near-from")
                            distance = gr.Slider(
                                0.05, MAX_DISTANCE, value=0.5, step=0.05, label="Distance", elem_id="distance"
                            )
                            neighbours = gr.Number(
                                label="Neighbours", value=8, precision=0, minimum=1, maximum=MAX_NEIGHBOURS
                            )
                        near_button = gr.Button("Paint neighbours", variant="primary")
                        near_status = gr.Markdown(elem_id="near-status", **status_opts)
                        near_gallery = gr.Gallery(
                            label="The picture and its neighbours", elem_id="near-gallery", **gallery_opts
                        )

                    with gr.Tab("Mix", id="mix", render_children=True):
                        gr.Markdown(
                            "Forms and styles: catalog numbers (`12`, `#12`) or seeds (`s7`), separated by commas."
                        )
                        with gr.Row():
                            forms = gr.Textbox(label="Forms (columns)", elem_id="forms")
                            styles = gr.Textbox(label="Styles (rows)", elem_id="styles")
                        with gr.Row():
                            layers = gr.Radio(
                                [*STUDIO_LAYER_CHOICES, "custom"],
                                value=DEFAULT_LAYERS,
                                label="Layers taken from the style",
                            )
                            custom = gr.Textbox(
                                label="Custom layer range", placeholder=f"e.g. 4-7 (0 to {model.num_ws - 1})"
                            )
                            mix_psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="ψ for seeds")
                        mix_button = gr.Button("Mix", variant="primary")
                        mix_status = gr.Markdown(elem_id="mix-status", **status_opts)
                        grid = gr.Image(
                            label="Forms × styles",
                            type="filepath",
                            format="png",
                            elem_id="grid",
                            elem_classes=["studio-picture"],
                        )
                        mix_gallery = gr.Gallery(label="Cells", elem_id="mix-gallery", **gallery_opts)

                    with gr.Tab("Edit", id="edit", render_children=True):
                        directions_file = studio.directions()[1].name
                        gr.Markdown(
                            f"Semantic directions (GANSpace PCA, in σ): moving a slider repaints the picture when it "
                            f"is let go. Name them with `ganscapes directions name {directions_file} 0 sky` in the "
                            "studio's folder, then restart the studio."
                        )
                        edit_from = gr.Textbox(label="Picture", elem_id="edit-from")
                        with gr.Row():
                            sliders = [
                                gr.Slider(
                                    -SLIDER_SIGMA,
                                    SLIDER_SIGMA,
                                    value=0,
                                    step=0.25,
                                    label=name,
                                    elem_id=f"direction-{k}",
                                    min_width=200,
                                )
                                for k, name in enumerate(studio.slider_names())
                            ]
                        edit_reset = gr.Button("All sliders to 0")
                        edit_status = gr.Markdown(elem_id="edit-status", **status_opts)
                        edit_gallery = gr.Gallery(
                            label="The picture and its edit", elem_id="edit-gallery", **gallery_opts
                        )

                    with gr.Tab("Walk", id="walk", render_children=True):
                        gr.Markdown(
                            "A film from picture to picture: catalog numbers (`12`, `#12`) or seeds (`s7`), in order."
                        )
                        with gr.Row():
                            keyframes = gr.Textbox(label="Keyframes", elem_id="keyframes", scale=3)
                            walk_grid = gr.Button("Walk the seed grid", size="sm", scale=1)
                        with gr.Row():
                            walk_frames = gr.Number(
                                label="Frames per transition",
                                value=24,
                                precision=0,
                                minimum=1,
                                maximum=MAX_WALK_FRAMES,
                                elem_id="walk-frames",
                            )
                            walk_loop = gr.Checkbox(label="Loop back to the first", value=True)
                            walk_psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="ψ for seeds")
                        with gr.Row():
                            walk_button = gr.Button("Walk", variant="primary")
                            walk_download = gr.DownloadButton(
                                "Download the MP4", elem_id="walk-download", interactive=False
                            )
                        walk_status = gr.Markdown(elem_id="walk-status", **status_opts)
                        walk_video = gr.Video(
                            label="Walk",
                            format=None,
                            autoplay=True,
                            loop=True,
                            interactive=False,
                            elem_id="walk-video",
                            elem_classes=["studio-picture"],
                        )

                    with gr.Tab("Guide", id="guide", render_children=True):
                        with gr.Row():
                            guide_from = gr.Textbox(label="Start from picture", elem_id="guide-from")
                            guide_prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
                            method = gr.Radio(["adam", "genetic"], value="adam", label="Method")
                            steps = gr.Number(label="Steps", value=20, precision=0, minimum=1, maximum=MAX_GUIDE_STEPS)
                        guide_button = gr.Button("Guide", variant="primary", interactive=clip_note is None)
                        guide_status = gr.Markdown(elem_id="guide-status", **status_opts)
                        guide_gallery = gr.Gallery(label="Best found", elem_id="guide-gallery", **gallery_opts)
                        history = gr.Image(
                            label="Score history",
                            type="filepath",
                            format="png",
                            elem_id="history",
                            elem_classes=["studio-picture"],
                        )

                    with gr.Tab("Project", id="project", render_children=True):
                        gr.Markdown(
                            f"Your own painting or photo as a latent (a PNG, JPEG or WebP of at most "
                            f"{MAX_UPLOAD_BYTES >> 20} MB): then mix, edit and walk it like any picture. More steps "
                            "come closer and take longer."
                        )
                        with gr.Row():
                            upload = gr.Image(
                                label="Your painting",
                                type="filepath",
                                sources=["upload"],
                                elem_id="upload",
                                height=240,
                            )
                            with gr.Column():
                                steps_w = gr.Number(
                                    label="Steps in W",
                                    value=PROJECT_STEPS[0],
                                    precision=0,
                                    minimum=0,
                                    maximum=MAX_PROJECT_STEPS,
                                    elem_id="steps-w",
                                )
                                steps_wplus = gr.Number(
                                    label="Steps in W+",
                                    value=PROJECT_STEPS[1],
                                    precision=0,
                                    minimum=0,
                                    maximum=MAX_PROJECT_STEPS,
                                    elem_id="steps-wplus",
                                )
                                project_button = gr.Button("Project it", variant="primary")
                        project_status = gr.Markdown(elem_id="project-status", **status_opts)
                        project_gallery = gr.Gallery(label="Projected", elem_id="project-gallery", **gallery_opts)

                    with gr.Tab("Finish", id="finish", render_children=True):
                        with gr.Row():
                            finish_from = gr.Textbox(label="Picture", elem_id="finish-from")
                            low = gr.Number(label="Low percentile", value=0.1)
                            high = gr.Number(label="High percentile", value=99.9)
                            aspect = gr.Textbox(label="Aspect", value="auto")
                            width = gr.Number(
                                label="Width (0: keep)", value=0, precision=0, minimum=0, maximum=MAX_FINISH_WIDTH
                            )
                        with gr.Row():
                            finish_button = gr.Button("Finish", variant="primary")
                            download = gr.DownloadButton("Download the PNG", elem_id="download", interactive=False)
                        finish_status = gr.Markdown(elem_id="finish-status", **status_opts)
                        finished = gr.Image(
                            label="Finished",
                            type="filepath",
                            format="png",
                            elem_id="finished",
                            elem_classes=["studio-picture"],
                        )

                    with gr.Tab("Catalog", id="catalog", render_children=True) as catalog_tab:
                        with gr.Row():
                            query = gr.Textbox(label="Search prompts", elem_id="query")
                            search = gr.Button("Search")
                        catalog_status = gr.Markdown(elem_id="catalog-status", **status_opts)
                        catalog_gallery = gr.Gallery(label="Catalog", elem_id="catalog-gallery", **gallery_opts)

        # -- events: the page's values as sent (preprocess=False), checked by the studio -----

        from gradio.utils import get_upload_folder

        on = Handlers(studio, keep=gr.skip(), inbox=Path(get_upload_folder()))

        def on_prompt(text, count, psi_value, keep, progress=gr.Progress()):
            return on.prompt(text, count, psi_value, keep, progress=lambda f, d: progress(f, desc=d))

        def on_guide(start, text, how, count, progress=gr.Progress()):
            return on.guide(start, text, how, count, progress=lambda f, d: progress(f, desc=d))

        def on_project(picture, w_steps, wplus_steps, progress=gr.Progress()):
            return on.project(picture, w_steps, wplus_steps, progress=lambda f, d: progress(f, desc=d))

        def on_walk(keys, frames, loop, psi_value):
            video, path, status = on.walk(keys, frames, loop, psi_value)
            ready = path is not on.keep
            return video, gr.DownloadButton(value=path, interactive=True) if ready else on.keep, status

        def to_tab(tab):
            """A side-panel button that opens `tab` with the selected picture in its field (its action runs next)."""
            return lambda chosen: (_as_text(chosen), gr.Tabs(selected=tab))

        def on_select(numbers, evt: gr.SelectData):
            return on.select(numbers, evt.index)

        def on_finish(source, lo, hi, ratio, px):
            path, _, status = on.finish(source, lo, hi, ratio, px)
            ready = path is not on.keep
            return path, gr.DownloadButton(value=path, interactive=True) if ready else on.keep, status

        def to_finish(chosen):
            """ "Finish it": the Finish tab, with the selected picture in its field (the finish runs next)."""
            return _as_text(chosen), gr.Tabs(selected="finish")

        raw = {"preprocess": False}
        paint.click(on_prompt, [prompt, n, psi, top], [gallery, ids["prompt"], prompt_status], **raw)
        seed_out = [seed_gallery, ids["seed"], shown_seeds, seed_status]
        paint_seed.click(on.seed, [seed, seed_psi], seed_out, **raw)
        random_seed.click(on.random, [seed_psi], [seed, *seed_out], **raw)
        paint_grid.click(on.seed_grid, [seed, seed_psi], seed_out, **raw)
        random_grid.click(on.random_grid, [seed_psi], [seed, *seed_out], **raw)
        # ψ repaints what is shown as soon as the slider is let go, without a click (the same seeds and ψ
        # are the catalog's pictures again, so going back and forth paints nothing twice)
        # (always_last: a slider let go again while it repaints is painted once more, at its last value, when that
        # repaint ends; Gradio's default for release would drop it and leave the page behind the slider)
        seed_psi.release(on.repaint, [shown_seeds, seed_psi], seed_out, trigger_mode="always_last", **raw)
        mix_button.click(
            on.mix, [forms, styles, layers, custom, mix_psi], [grid, mix_gallery, ids["mix"], mix_status], **raw
        )
        guide_button.click(
            on_guide,
            [guide_from, guide_prompt, method, steps],
            [guide_gallery, ids["guide"], history, guide_status],
            **raw,
        )
        finish_inputs = [finish_from, low, high, aspect, width]
        finish_button.click(on_finish, finish_inputs, [finished, download, finish_status], **raw)
        near_out = [near_gallery, ids["near"], near_status]
        near_button.click(on.near, [near_from, distance, neighbours], near_out, **raw)
        edit_out = [edit_gallery, ids["edit"], edit_status]
        for slider in sliders:  # each repaints when let go, by pointer or by key (HEAD's script)
            slider.release(on.edit, [edit_from, *sliders], edit_out, trigger_mode="always_last", **raw)
        edit_reset.click(lambda: [0] * len(sliders), None, sliders, **raw).then(
            on.edit, [edit_from, *sliders], edit_out, **raw
        )
        walk_grid.click(on.walk_keys, [ids["seed"]], [keyframes], **raw)
        walk_inputs = [keyframes, walk_frames, walk_loop, walk_psi]
        walk_button.click(on_walk, walk_inputs, [walk_video, walk_download, walk_status], **raw)
        project_out = [project_gallery, ids["project"], project_status]
        project_button.click(on_project, [upload, steps_w, steps_wplus], project_out, **raw)
        search.click(on.search, [query], [catalog_gallery, ids["catalog"], catalog_status], **raw)
        # the catalog as it is now whenever its tab is opened: it grows from every other tab
        catalog_tab.select(on.search, [query], [catalog_gallery, ids["catalog"], catalog_status], **raw)
        for g, name in (
            (gallery, "prompt"),
            (seed_gallery, "seed"),
            (near_gallery, "near"),
            (mix_gallery, "mix"),
            (edit_gallery, "edit"),
            (guide_gallery, "guide"),
            (project_gallery, "project"),
            (catalog_gallery, "catalog"),
        ):
            g.select(on_select, [ids[name]], [selected], **raw)
        # Adding to a list happens in the browser (Handlers.append's rule in JavaScript): no job to queue, so a
        # second click while the first is on its way is never dropped (Gradio drops a click while its job is pending).
        use_form.click(None, [forms, selected], [forms], js=APPEND_JS)
        use_style.click(None, [styles, selected], [styles], js=APPEND_JS)
        use_guide.click(_as_text, [selected], [guide_from], **raw)
        use_walk.click(None, [keyframes, selected], [keyframes], js=APPEND_JS)
        use_near.click(to_tab("near"), [selected], [near_from, tabs], **raw).then(
            on.near, [near_from, distance, neighbours], near_out, **raw
        )
        use_edit.click(to_tab("edit"), [selected], [edit_from, tabs], **raw).then(
            on.edit, [edit_from, *sliders], edit_out, **raw
        )
        selected.change(on.about, [selected, prompt], [about, command], **raw)
        # the browser copies the text itself: nothing to run on the server (Clipboard API, navigator.clipboard)
        copy_command.click(None, [command], None, js="(text) => { navigator.clipboard.writeText(text); }")
        use_finish.click(to_finish, [selected], [finish_from, tabs], **raw).then(
            on_finish, finish_inputs, [finished, download, finish_status], **raw
        )

    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return app


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, log=print, block: bool = True):
    """Serve the studio until Ctrl-C; with `block=False`, return the running app (its `close()` stops it)."""
    quiet_environment()
    # Gradio copies every picture it shows; keep those copies in the studio's folder, not /tmp.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(studio.out / ".gradio"))
    import gradio as gr
    from starlette.middleware import Middleware

    app = build_app(studio)
    loopback = host in LOOPBACK_NAMES
    if not loopback:
        log(
            f"ganscapes: warning: the studio listens on {host}: anyone who can reach this machine on port {port} "
            "can use it and see its pictures."
        )
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    log(f"ganscapes studio: http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}  (Ctrl-C stops it)")
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        quiet=True,
        allowed_paths=[str(studio.out)],
        footer_links=[],
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        theme=theme,
        css=CSS,
        head=HEAD,
        i18n=gr.I18n(en=TRANSLATIONS),
        # Gradio's max_file_size bounds each uploaded file; the guard refuses any larger body, and any upload but
        # one picture, before Gradio reads it (FastAPI(middleware=...), passed on by app_kwargs).
        max_file_size=MAX_UPLOAD_BYTES,
        app_kwargs={"middleware": [Middleware(RequestGuard, hosts=LOOPBACK_NAMES if loopback else None)]},
        prevent_thread_lock=not block,
    )
    return app
