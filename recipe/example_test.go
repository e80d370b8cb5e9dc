package recipe_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/distill-dev/distill/recipe"
)

func ExampleParse() {
	src := []byte(`
training:
  epochs: 3
  schedule: {kind: cosine}
teacher:
  model: {hidden: [512, 512], dropout: 0.2}
students:
  - name: small
    model: {hidden: [128]}
    distill: {temperature: 4}
    training: {epochs: 5}
`)
	r, err := recipe.Parse(src, "recipes/quick.yaml")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("run:", r.Name, "→", r.Output.Dir)
	t := r.Teacher.Training
	fmt.Printf("teacher: %v, %d epochs, %s lr %g, %s\n", r.Teacher.Model.Hidden, t.Epochs, t.Optimizer, t.LR, t.Schedule.Kind)
	for _, s := range r.Students {
		fmt.Printf("student %s: %v, T=%g α=%g, %d epochs, baseline %v\n",
			s.Name, s.Model.Hidden, s.Distill.Temperature, s.Distill.Alpha, s.Training.Epochs, s.BaselineEnabled())
	}
	// Output:
	// run: quick → runs/quick
	// teacher: [512 512], 3 epochs, adam lr 0.001, cosine
	// student small: [128], T=4 α=0.9, 5 epochs, baseline true
}

func ExampleParse_problems() {
	src := []byte(`
teacher:
  model: {hidden: [512, wide]}
students:
  - name: small
    model: {hidden: [128]}
    distill:
      temprature: 4
      alpha: 1.5
`)
	_, err := recipe.Parse(src, "mnist.yaml")
	fmt.Println(err)

	var rerr *recipe.Error
	if errors.As(err, &rerr) {
		fmt.Println(len(rerr.Problems), "problems; the first is at line", rerr.Problems[0].Line)
	}
	// Output:
	// mnist.yaml:3:25: teacher.model.hidden[1]: must be an integer, got "wide"
	// mnist.yaml:8:7: students[0].distill.temprature: unknown key; did you mean "temperature"?
	// mnist.yaml:9:7: students[0].distill.alpha: must be in [0, 1] (the weight of the soft-target loss), got 1.5
	// 3 problems; the first is at line 3
}

func ExampleLoad() {
	r, err := recipe.Load("../recipes/mnist-hinton.yaml")
	if err != nil {
		log.Fatal(err)
	}
	input, classes := r.Data.Shape()
	spec, err := r.Teacher.Model.Spec("teacher", input, classes)
	if err != nil {
		log.Fatal(err)
	}
	params, _ := spec.ParamCount()
	fmt.Printf("%s teacher: %d layers, %d parameters\n", r.Name, len(spec.Layers), params)
	// Output:
	// mnist-hinton teacher: 9 layers, 2395210 parameters
}

func ExampleRecipe_TrainingFor() {
	r := &recipe.Recipe{Training: recipe.Training{Epochs: 20, Optimizer: "sgd"}}

	// A model without its own training section gets the top-level one,
	// with defaults that follow its optimizer.
	t := r.TrainingFor(recipe.Training{})
	fmt.Println(t.Epochs, t.Optimizer, t.LR, t.Momentum)

	// A model's own keys win, key by key. Mark explicit zeros.
	own := recipe.Training{LR: 0.05}
	own.MarkSet("momentum")
	t = r.TrainingFor(own)
	fmt.Println(t.Epochs, t.Optimizer, t.LR, t.Momentum)
	// Output:
	// 20 sgd 0.1 0.9
	// 20 sgd 0.05 0
}

func ExampleRecipe_Validate() {
	r := &recipe.Recipe{
		Teacher: recipe.Teacher{Model: recipe.Model{Hidden: []int{256}}},
		Students: []recipe.Student{
			{Name: "a", Model: recipe.Model{Hidden: []int{32}}},
			{Name: "a", Model: recipe.Model{Hidden: []int{0}}},
		},
	}
	r.SetDefaults()
	fmt.Println(r.Validate())
	// Output:
	// students[1].name: "a" is already used by students[0] (names must be unique, ignoring case)
	// students[1].model.hidden[0]: must be at least 1, got 0
}
