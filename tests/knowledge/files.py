"""Real files of every supported format, written the way their tools write them."""

from pathlib import Path

from fpdf import FPDF

MARKDOWN = """# Kettlebell Swing

The kettlebell swing trains the hips, glutes and hamstrings.

## Setup

Stand with your feet shoulder-width apart and the kettlebell on the floor in front of you.

- Hinge at the hips, not the knees.
- Keep a neutral spine.

## Common mistakes

Squatting the swing instead of hinging moves the work to the quadriceps.
"""

HTML = """<!doctype html><html><head><title>Farmer's Walk guide</title></head><body>
<nav><a href="/">Home</a> | <a href="/shop">Shop</a> | <a href="/login">Login</a></nav>
<header><p>FitSite — subscribe to our newsletter for weekly deals!</p></header>
<main><article>
<h1>Farmer's Walk</h1>
<p>The farmer's walk builds grip strength and a stable core. Pick up two heavy dumbbells and walk.</p>
<h2>Technique</h2>
<p>Keep your shoulders back and take short, quick steps. Breathe steadily throughout the carry.</p>
<ul><li>Look straight ahead.</li><li>Do not let the weights swing.</li></ul>
</article></main>
<footer><p>Copyright 2026 FitSite Inc. All rights reserved. Privacy policy. Cookie settings.</p></footer>
<script>trackVisitor("abc")</script>
</body></html>"""

TEXT = """Recovery basics

Sleep at least seven hours a night while training hard.

Eat enough protein: about 1.6 grams per kilogram of body weight per day.
"""


def write_pdf(path: Path, title: str, paragraphs: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 8, paragraph)
        pdf.ln(6)
    pdf.output(str(path))
    return path
