"""Write agc_btag.json: the AGC's b-tag weight variations as a correctionlib CorrectionSet.

The AGC varies the event weight by 1 +- 0.075 * pt(jet i) / 50 for each of the four
leading jets. Expressed as a correction with inputs (systematic, pt) it can be evaluated
by correctionlib like any experiment-provided scale factor:

    python configs/corrections/make_agc_btag.py      # rewrites configs/corrections/agc_btag.json
"""

from pathlib import Path

import correctionlib.schemav2 as cs

SIDES = {"up": "1 + 0.075 * x / 50", "down": "1 - 0.075 * x / 50", "nominal": "1"}


def btag_variation() -> cs.Correction:
    return cs.Correction(
        name="btag_var",
        description="AGC b-tag weight variation for one jet: 1 +- 0.075 * pt / 50",
        version=1,
        inputs=[cs.Variable(name="systematic", type="string", description="up, down or nominal"),
                cs.Variable(name="pt", type="real", description="jet pt [GeV]")],
        output=cs.Variable(name="weight", type="real"),
        data=cs.Category(nodetype="category", input="systematic", content=[
            cs.CategoryItem(key=side, value=cs.Formula(nodetype="formula", expression=formula,
                                                       parser="TFormula", variables=["pt"]))
            for side, formula in SIDES.items()]),
    )


def main() -> None:
    cset = cs.CorrectionSet(schema_version=2, description="AGC ttbar b-tag weight variations",
                            corrections=[btag_variation()])
    out = Path(__file__).with_name("agc_btag.json")
    out.write_text(cset.model_dump_json(exclude_unset=True, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
