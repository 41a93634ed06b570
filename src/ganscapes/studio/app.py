"""The studio's web page: Gradio components wired to `Studio`'s actions.

Nothing here computes: every button calls one method of `Studio`, and a refused request
(a `StudioError`) becomes a line on the page instead of a traceback. One job runs at a
time; others wait in a short queue, so a second browser tab cannot exhaust memory.
"""

import os
from pathlib import Path

from ganscapes.clip.prompts import DEFAULT_PROMPT
from ganscapes.errors import UserError
from ganscapes.studio.core import MAX_GUIDE_STEPS, MAX_TOP, STUDIO_LAYER_CHOICES, Studio

QUEUE_SIZE = 8  # waiting jobs beyond this are refused


def quiet_environment() -> None:
    """No telemetry, no update checks, no server-side rendering (which would need Node)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")


def _fail(e: Exception) -> str:
    return f"**Could not do that:** {e}"


def build_app(studio: Studio):
    quiet_environment()
    import gradio as gr

    clip_note = studio.clip_status()
    model = studio.model
    gallery_opts = {"columns": 6, "format": "png", "height": "auto", "object_fit": "contain"}

    with gr.Blocks(title="ganscapes studio", analytics_enabled=False) as app:
        gr.Markdown(
            f"# ganscapes studio\nModel `{Path(studio.cfg.model).name}` ({model.resolution}², hash "
            f"`{model.model_hash[:12]}`) on {studio.device}. Every picture is kept in the catalog with its recipe."
        )
        # catalog numbers of each gallery's pictures, in order: a click on a gallery that is not the
        # one filled last must still select its own picture
        ids = {name: gr.State([]) for name in ("prompt", "seed", "mix", "guide", "catalog")}
        with gr.Row():
            selected = gr.Textbox(label="Selected picture", interactive=False, elem_id="selected")
            use_form = gr.Button("Add to forms", size="sm")
            use_style = gr.Button("Add to styles", size="sm")
            use_guide = gr.Button("Guide from it", size="sm")
            use_finish = gr.Button("Finish it", size="sm")

        with gr.Tab("Paint from a prompt"):
            prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, elem_id="prompt", interactive=clip_note is None)
            gr.Markdown(f"**CLIP is not available.** {clip_note}" if clip_note else "", visible=bool(clip_note))
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
                top = gr.Number(label="Keep the best", value=6, precision=0, minimum=1, maximum=MAX_TOP, elem_id="top")
            paint = gr.Button("Paint from the prompt", variant="primary", interactive=clip_note is None)
            gallery = gr.Gallery(label="Best matches", elem_id="prompt-gallery", **gallery_opts)
            prompt_status = gr.Markdown(elem_id="prompt-status")

        with gr.Tab("Explore by seed"):
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, elem_id="seed")
                seed_psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="ψ (truncation)")
            with gr.Row():
                paint_seed = gr.Button("Paint this seed", variant="primary")
                random_seed = gr.Button("Random seed")
            seed_gallery = gr.Gallery(label="Painting", elem_id="seed-gallery", **gallery_opts)
            seed_status = gr.Markdown(elem_id="seed-status")

        with gr.Tab("Mix"):
            gr.Markdown("Forms and styles: catalog numbers (`12`, `#12`) or seeds (`s7`), separated by commas.")
            with gr.Row():
                forms = gr.Textbox(label="Forms (columns)", elem_id="forms")
                styles = gr.Textbox(label="Styles (rows)", elem_id="styles")
            with gr.Row():
                layers = gr.Radio([*STUDIO_LAYER_CHOICES, "custom"], value="fine", label="Layers taken from the style")
                custom = gr.Textbox(label="Custom layer range", placeholder=f"e.g. 4-7 (0 to {model.num_ws - 1})")
                mix_psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="ψ for seeds")
            mix_button = gr.Button("Mix", variant="primary")
            grid = gr.Image(label="Forms × styles", type="filepath", format="png", elem_id="grid")
            mix_gallery = gr.Gallery(label="Cells", elem_id="mix-gallery", **gallery_opts)
            mix_status = gr.Markdown(elem_id="mix-status")

        with gr.Tab("Guide"):
            with gr.Row():
                guide_from = gr.Textbox(label="Start from picture", elem_id="guide-from")
                guide_prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
                method = gr.Radio(["adam", "genetic"], value="adam", label="Method")
                steps = gr.Number(label="Steps", value=20, precision=0, minimum=1, maximum=MAX_GUIDE_STEPS)
            guide_button = gr.Button("Guide", variant="primary", interactive=clip_note is None)
            with gr.Row():
                guide_gallery = gr.Gallery(label="Best found", elem_id="guide-gallery", **gallery_opts)
                history = gr.Image(label="Score history", type="filepath", format="png")
            guide_status = gr.Markdown(elem_id="guide-status")

        with gr.Tab("Finish"):
            with gr.Row():
                finish_from = gr.Textbox(label="Picture", elem_id="finish-from")
                low = gr.Number(label="Low percentile", value=0.1)
                high = gr.Number(label="High percentile", value=99.9)
                aspect = gr.Textbox(label="Aspect", value="auto")
                width = gr.Number(label="Width (0: keep)", value=0, precision=0, minimum=0)
            finish_button = gr.Button("Finish", variant="primary")
            finished = gr.Image(label="Finished", type="filepath", format="png")
            download = gr.File(label="PNG with its recipe", elem_id="download")
            finish_status = gr.Markdown(elem_id="finish-status")

        with gr.Tab("Catalog"):
            with gr.Row():
                query = gr.Textbox(label="Search prompts", elem_id="query")
                search = gr.Button("Search")
            catalog_gallery = gr.Gallery(label="Catalog", elem_id="catalog-gallery", **{**gallery_opts, "columns": 8})
            catalog_status = gr.Markdown(elem_id="catalog-status")

        # -- handlers --------------------------------------------------------------------

        def show(entries):
            return [(str(studio.path_of(e)), e.caption) for e in entries], [e.id for e in entries]

        def on_prompt(text, count, psi_value, keep, progress=gr.Progress()):
            try:
                entries = studio.paint_prompt(text, count, psi_value, keep, progress=lambda f, d: progress(f, desc=d))
            except UserError as e:
                return [], [], _fail(e)
            pics, numbers = show(entries)
            return (
                pics,
                numbers,
                f"The {len(entries)} best of {int(count)} for “{text}”: best score {entries[0].score:+.4f}.",
            )

        def on_seed(value, psi_value):
            try:
                entry = studio.paint_seed(value, psi_value)
            except UserError as e:
                return [], [], _fail(e)
            pics, numbers = show([entry])
            return pics, numbers, f"Seed {entry.seed}, ψ {psi_value:g}: picture #{entry.id}."

        def on_random(psi_value):
            value = studio.random_seed()
            return (value, *on_seed(value, psi_value))

        def on_mix(form_text, style_text, preset, custom_text, psi_value):
            try:
                grid_path, entries = studio.mix(form_text, style_text, preset, custom_text, psi_value)
            except UserError as e:
                return None, [], [], _fail(e)
            pics, numbers = show(entries)
            return str(grid_path), pics, numbers, f"{len(entries)} cells, pictures #{entries[0].id}–#{entries[-1].id}."

        def on_guide(start, text, how, count, progress=gr.Progress()):
            try:
                entry, plot = studio.guide(start, text, how, count, progress=lambda f, d: progress(f, desc=d))
            except UserError as e:
                return [], [], None, _fail(e)
            pics, numbers = show([entry])
            return pics, numbers, str(plot), f"Best score {entry.score:+.4f}: picture #{entry.id}."

        def on_finish(source, lo, hi, ratio, px):
            try:
                entry = studio.finish(source, lo, hi, ratio, px)
            except UserError as e:
                return None, None, _fail(e)
            path = str(studio.path_of(entry))
            return path, path, f"Picture #{entry.id}; the PNG carries its recipe (`ganscapes info` shows it)."

        def present(entry) -> bool:  # a row whose file is gone, or points outside the folder, is left out
            try:
                return studio.path_of(entry).is_file()
            except UserError:
                return False

        def on_search(text):
            entries = studio.catalog.search(text, limit=200)
            pics, numbers = show([e for e in entries if present(e)])
            return pics, numbers, f"{len(pics)} picture(s)" + (f" for “{text}”" if text.strip() else "") + "."

        def on_select(numbers, evt: gr.SelectData):
            return f"#{numbers[evt.index]}" if numbers and evt.index is not None and evt.index < len(numbers) else ""

        def append(current, chosen):
            return chosen if not current.strip() else f"{current}, {chosen}" if chosen else current

        paint.click(on_prompt, [prompt, n, psi, top], [gallery, ids["prompt"], prompt_status])
        paint_seed.click(on_seed, [seed, seed_psi], [seed_gallery, ids["seed"], seed_status])
        random_seed.click(on_random, [seed_psi], [seed, seed_gallery, ids["seed"], seed_status])
        mix_button.click(on_mix, [forms, styles, layers, custom, mix_psi], [grid, mix_gallery, ids["mix"], mix_status])
        guide_button.click(
            on_guide, [guide_from, guide_prompt, method, steps], [guide_gallery, ids["guide"], history, guide_status]
        )
        finish_button.click(on_finish, [finish_from, low, high, aspect, width], [finished, download, finish_status])
        search.click(on_search, [query], [catalog_gallery, ids["catalog"], catalog_status])
        for g, name in (
            (gallery, "prompt"),
            (seed_gallery, "seed"),
            (mix_gallery, "mix"),
            (guide_gallery, "guide"),
            (catalog_gallery, "catalog"),
        ):
            g.select(on_select, [ids[name]], [selected])
        use_form.click(append, [forms, selected], [forms])
        use_style.click(append, [styles, selected], [styles])
        use_guide.click(lambda s: s, [selected], [guide_from])
        use_finish.click(lambda s: s, [selected], [finish_from])

    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return app


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, log=print) -> None:
    """Serve the studio until Ctrl-C."""
    quiet_environment()
    # Gradio copies every picture it shows; keep those copies in the studio's folder, not /tmp.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(studio.out / ".gradio"))
    import gradio as gr

    app = build_app(studio)
    if host not in ("127.0.0.1", "localhost", "::1"):
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
    )
